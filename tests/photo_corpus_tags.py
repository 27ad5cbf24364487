"""The tags a person gives each corpus photo, in the words of PhotoSeek's default vocabulary, and query groups.

Written by a person looking at each photo: every tag here is visibly true of the photo, generic words included
(a cat photo is also "animal" and "pet"), so tagging is scored on precision and recall against them. Query
groups split the retrieval eval into the kinds of photo the starter found hard (people, night, black-and-white...).
"""

from __future__ import annotations

# fmt: off
TAGS: dict[str, str] = {
    "astronaut": "person|portrait|flag",
    "chelsea_cat": "cat|pet|animal|close-up",
    "coffee": "coffee|cup|drink|table",
    "cameraman": "person|man|camera|black and white|field",
    "motorcycle": "motorcycle|vehicle",
    "rocket_launch_pad": "rocket|dusk|tower",
    "ancient_coins": "black and white|close-up",
    "moon_surface": "moon|black and white",
    "brick_wall": "black and white|texture|close-up",
    "handwritten_math": "black and white|document|text",
    "book_page": "text|document|book|black and white",
    "hubble_deep_field": "stars|night sky",
    "retina_fundus": "close-up",
    "chinese_pagoda": "temple|tower|building|tree|lake|architecture",
    "orange_dahlia": "flower|plant|close-up",
    "aerial_farmland": "aerial view|field|black and white|landscape",
    "people_on_stairs": "people|person|stairs|black and white",
    "navy_officer_portrait": "person|portrait|woman|elderly person|uniform|flag",
    "cat_behind_mug": "cat|pet|animal|mug|interior",
    "gothic_ruins": "ruins|architecture|sky|building",
    "skyscrapers_night": "skyscraper|city|night|building|architecture",
    "aerial_city": "aerial view|city|lake|building",
    "aloe_plant": "plant|interior",
    "red_apple": "apple|fruit|food",
    "mandrill": "monkey|animal|close-up|wildlife",
    "ball_toss_office": "people|person|man|ball|office|interior|black and white",
    "circuit_board": "close-up",
    "hotel_building": "building|architecture|tree|grass",
    "butterfly": "butterfly|insect|animal",
    "small_dog": "dog|pet|animal",
    "sliced_fruit": "fruit|food|orange",
    "graffiti": "graffiti|art",
    "ornate_palace": "building|architecture|bird|sky|tower",
    "cobbled_street": "street|house|building|architecture",
    "car_motion_blur": "car|vehicle",
    "footballer": "person|football|soccer|sports|stadium|ball",
    "orange_fruit": "orange|fruit|food",
    "toys_and_shells": "toy",
    "squirrel": "squirrel|animal|wildlife|tree",
    "desk_objects": "table|interior|ball",
    "grocery_boxes": "black and white|interior|food|book|chair",
    "robin": "bird|animal|wildlife",
    "calm_lake": "lake|landscape|sky|forest|tree",
    "lone_tree": "tree|meadow|field|sky|grass|landscape",
    "parking_notice": "sign|street|car|text",
    "road_sign": "sign|text|road",
    "no_parking_barriers": "sign|street|text",
    "shop_front": "shop|street|building|car",
    "potted_plant": "plant",
    "dragonfly": "insect|animal|sky",
    "fig_in_bowl": "fruit|food|bowl",
    "paint_brushes": "close-up|art",
    "living_room": "living room|interior|drum|wine|bottle|furniture|table",
    "autumn_mountain": "mountain|forest|autumn|landscape|meadow",
    "bird_ornament": "bird|sculpture",
    "two_dogs": "dog|pet|animal",
    "wall_clock": "clock|close-up",
    "forest_stream": "river|forest|rock",
    "mountain_trail": "mountain|snow|landscape|grass",
    "dandelions": "flower|field|plant",
    "mountain_sunset": "sunset|mountain|landscape|sky|grass",
    "bus_street": "people|person|man|bus|street|city|vehicle",
    "two_men_suits": "people|person|man|suit|crowd|stadium",
    "wooden_blocks": "black and white|toy|table|interior",
    "brick_house": "house|building|architecture|window|sky",
    "copy_centre": "building|architecture|sign|shop|text|flower",
    "nuthatch": "bird|animal|wildlife|tree",
    "milky_way_sea": "night sky|stars|night|sea|reflection",
    "bridge_cables": "bridge|sky|coast",
    "water_drop": "close-up|macro",
    "dune_grass": "grass|sea|sky|beach|coast",
    "orange_flower": "flower|plant|close-up|macro",
    "marigold": "flower|plant|garden",
    "grass_blades": "grass|plant|close-up|meadow",
    "ladybird": "insect|animal|flower|plant|close-up|macro",
    "raindrops_leaves": "rain|plant|close-up|macro",
    "storm_road": "storm|cloud|road|sky|landscape",
    "dandelion_seeds": "flower|plant|close-up|macro",
    "yellow_flower": "flower|plant|close-up",
    "wooden_planks": "texture|close-up",
    "green_leaf": "plant|close-up|texture|pattern",
    "jetty_planks": "lake|close-up|sky|cloud|tree",
    "foggy_pier": "black and white|fog",
    "stacked_cups": "cup|pattern",
    "blue_hour_lake": "lake|dusk|fog|reflection|landscape",
    "rowing_boats_sunset": "boat|lake|sunset|sky|cloud|hill|landscape",
    "autumn_leaf": "autumn leaves|autumn|close-up",
    "white_facade": "black and white|architecture|building|abstract|pattern",
    "kite_sky": "kite|sky|cloud",
    "moss_sprig": "plant|close-up|pattern",
    "forest_path": "forest|tree|plant",
    "lake_twilight": "lake|dusk|sky|reflection|landscape",
}
# fmt: on

# Photos added after every starter weight, threshold and cutoff was chosen on the others: nothing was tuned on them,
# so their figures (bench/eval_retrieval.py prints them apart) check whether the tuned ones hold on new photos.
HELD_OUT: frozenset[str] = frozenset({
    "jetty_planks", "foggy_pier", "stacked_cups", "blue_hour_lake", "rowing_boats_sunset", "autumn_leaf",
    "white_facade", "kite_sky", "moss_sprig", "forest_path", "lake_twilight",
})  # fmt: skip

# A photo belongs to every group one of whose tags it carries; "other" holds the rest.
QUERY_GROUPS: dict[str, frozenset[str]] = {
    "people": frozenset({"person", "people", "portrait", "crowd", "group photo", "man", "woman"}),
    "night / dusk": frozenset({"night", "dusk", "night sky", "sunset", "storm"}),
    "black and white": frozenset({"black and white"}),
    "indoor": frozenset({"interior", "living room", "office"}),
    "animals": frozenset({"animal"}),
}


# Queries for things no corpus photo shows: a search cutoff should answer them with (almost) nothing.
ABSENT_QUERIES: tuple[str, ...] = (
    "a giraffe", "a pizza", "fireworks", "a sailboat", "a laptop", "a horse", "a guitar", "a tennis match",
    "an airplane", "a wedding", "a birthday cake", "a snowboarder", "sushi", "a train", "a glass of beer",
    "a swimming pool", "a baby", "a tractor", "a violin", "a christmas tree",
)  # fmt: skip


# Generic words a person searches for ("an animal"): every photo tagged with the word is a right answer.
GENERIC_QUERIES: dict[str, str] = {
    "animal": "a photo of an animal", "dog": "a photo of a dog", "cat": "a photo of a cat", "bird": "a photo of a bird",
    "insect": "a photo of an insect", "vehicle": "a photo of a vehicle", "car": "a photo of a car",
    "food": "a photo of food", "fruit": "a photo of fruit", "plant": "a photo of a plant",
    "flower": "a photo of a flower", "building": "a photo of a building", "person": "a photo of a person",
    "people": "people", "black and white": "a black and white photo",
}  # fmt: skip


def tags_of(name: str) -> tuple[str, ...]:
    """The person-given tags of corpus photo `name` (KeyError when it has none)."""
    return tuple(TAGS[name].split("|"))


def groups_of(tags: tuple[str, ...]) -> list[str]:
    """The query groups a photo with these tags belongs to, or ["other"]."""
    groups = [group for group, members in QUERY_GROUPS.items() if members & set(tags)]
    return groups or ["other"]
