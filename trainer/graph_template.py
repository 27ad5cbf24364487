"""Export the graph templates core fills from checkpoints (``python -m trainer export-templates``).

Per architecture tag: the golden-filled train-time model's fusion plan (which train-time entries each fused conv
comes from), its reparameterized image and text graphs exported with every weight as an ONNX external-data
initializer named by its fused state-dict key (then the weights are dropped), and a ``core.graph_template``
descriptor. The export checks itself: core's numpy fill of the templates from the train-time weights must give
PyTorch's train-time features on real photos and captions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from core.errors import ImportFailed
from core.graph_template import (
    Architecture,
    Fusion,
    GraphTemplate,
    InitializerSlot,
    LargeKernelFusion,
    MobileOneFusion,
    MobileOneSource,
    ModelEntry,
    RepCPEFusion,
    RepMixerFusion,
    TemplateCheck,
    TemplateDescriptor,
    write_descriptor,
    write_gzip,
)
from core.preprocess import preprocess
from core.template_fill import write_graph
from core.tokenizers.clip_bpe import ClipBpeTokenizer, bundled_vocab_path
from trainer.mobileclip_export import PARITY_CAPTIONS, encoder_graphs, parity_images, preprocess_spec
from trainer.models.blocks import MobileOneBlock, ReparamLargeKernelConv, RepCPE, RepMixer
from trainer.models.clip import MODELS, MobileCLIP, create_model
from trainer.models.golden_fill import build_filled
from trainer.models.reparam import reparameterize_model
from trainer.onnx_export import export_onnx, onnx_outputs

TAGS = ("S0", "S1", "S2", "B", "MC2-S0", "MC2-S2", "MC2-B", "MC2-S3", "MC2-S4")
_ALIGN = 64  # byte alignment of each initializer in the data file
_CHECK_BOUND = 1e-4  # normalised features, template filled by core vs PyTorch train-time


def _source(block: MobileOneBlock, prefix: str) -> MobileOneSource:
    names = block.names
    skip = getattr(block, names.skip, None)
    convs = getattr(block, names.conv, None) or ()
    scale = getattr(block, names.scale, None)
    eps = skip.eps if skip is not None else (convs[0] if convs else scale).bn.eps
    return MobileOneSource(
        block.in_ch,
        block.out_ch,
        block.groups,
        block.kernel_size,
        f"{prefix}.{names.skip}" if skip is not None else None,
        tuple(f"{prefix}.{names.conv}.{i}" for i in range(len(convs))),
        f"{prefix}.{names.scale}" if scale is not None else None,
        eps,
    )


def _fusion(module: nn.Module, prefix: str) -> Fusion | None:
    if isinstance(module, RepMixer):
        scale = "layer_scale.gamma" if isinstance(module.layer_scale, nn.Module) else "layer_scale"
        return RepMixerFusion(
            f"{prefix}.reparam_conv",
            f"{prefix}.{scale}",
            _source(module.mixer, f"{prefix}.mixer"),
            _source(module.norm, f"{prefix}.norm"),
        )
    if isinstance(module, MobileOneBlock):
        return MobileOneFusion(f"{prefix}.reparam_conv", _source(module, prefix))
    if isinstance(module, ReparamLargeKernelConv):
        names = module.names
        large = getattr(module, names.large)
        return LargeKernelFusion(
            f"{prefix}.{names.large_fused}",
            f"{prefix}.{names.large}",
            f"{prefix}.small_conv",
            large.conv.kernel_size,
            large.bn.eps,
        )
    if isinstance(module, RepCPE):
        return RepCPEFusion(f"{prefix}.reparam_conv", f"{prefix}.{module.names.cpe}")
    return None


def fusion_plan(model: nn.Module) -> tuple[Fusion, ...]:
    """Every fusion ``reparameterize_model`` does on the train-time ``model``, with full state-dict key prefixes.

    Parents come first and own their children (a RepMixer's mixer and norm are part of its fusion).
    """
    plan: list[Fusion] = []
    owned: list[str] = []
    for prefix, module in model.named_modules():
        if any(prefix.startswith(f"{parent}.") for parent in owned):
            continue
        fusion = _fusion(module, prefix)
        if fusion is not None:
            plan.append(fusion)
            owned.append(prefix)
    return tuple(plan)


def _strip_weights(exported: Path, dest: Path, data_file: str, keys: set[str]) -> tuple[InitializerSlot, ...]:
    """Rewrite ``exported`` as ``dest`` (gzip) with every initializer in external data ``data_file``, and no data."""
    graph = onnx.load(str(exported))
    slots, offset = [], 0
    for tensor in graph.graph.initializer:
        key = tensor.name.removeprefix("model.")
        if key not in keys or tensor.data_type != onnx.TensorProto.FLOAT:
            raise ImportFailed(f"initializer {tensor.name} is not a float32 weight of the fused model")
        size = 4 * int(np.prod(tensor.dims, dtype=np.int64))
        slots.append(InitializerSlot(tensor.name, key, tuple(int(d) for d in tensor.dims), offset))
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        del tensor.external_data[:]
        for field, value in (("location", data_file), ("offset", str(offset)), ("length", str(size))):
            entry = tensor.external_data.add()
            entry.key, entry.value = field, value
        offset += -(-size // _ALIGN) * _ALIGN
    write_gzip(dest, graph.SerializeToString())
    return tuple(slots)


def _entry(name: str) -> ModelEntry:
    info = MODELS[name]
    return ModelEntry(
        name,
        info.display,
        info.layout,
        info.checkpoint_file,
        info.interpolation,
        info.mean,
        info.std,
        info.notes,
        info.license_text(),
    )


def _architecture(model: MobileCLIP) -> Architecture:
    info = model.info
    return Architecture(
        tag=info.tag,
        image=f"{type(model.image_tower).__name__} at {info.resolution} px (reparameterized)",
        text=f"{type(model.text_tower).__name__}, 77 tokens, EOT pooling at eot_index",
        resolution=info.resolution,
        embed_dim=info.embed_dim,
        layout=info.layout,
        openclip_form=info.openclip_form,
        logit_scale_max=100.0 if info.layout == "v1" else None,
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@torch.inference_mode()
def export_template(tag: str, out_dir: Path) -> TemplateDescriptor:
    """Export the templates and descriptor of architecture ``tag`` into ``out_dir``; returns the descriptor."""
    names = [name for name, info in MODELS.items() if info.tag == tag]
    model = build_filled(lambda: create_model(names[0]))
    layout = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    train_state = {k: v.numpy() for k, v in model.state_dict().items()}  # views: kept alive through the fusion
    plan = fusion_plan(model)
    images, _ = parity_images()
    spec = preprocess_spec(model.info)
    pixels = np.stack([preprocess(image, spec)[0] for image in images])
    tokens = ClipBpeTokenizer(bundled_vocab_path())(list(PARITY_CAPTIONS))
    feeds = {
        "image": {"pixel_values": pixels},
        "text": {"input_ids": tokens["input_ids"], "eot_index": tokens["eot_index"]},
    }
    expected = {
        "image": model.encode_image(torch.from_numpy(pixels)).numpy(),
        "text": model.encode_text(torch.from_numpy(tokens["input_ids"]), torch.from_numpy(tokens["eot_index"])),
    }
    expected["text"] = expected["text"].numpy()
    fused = reparameterize_model(model, inplace=True).eval()
    keys = set(fused.state_dict())
    graphs, diffs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        examples = {"input_ids": tokens["input_ids"][:2], "eot_index": tokens["eot_index"][:2]}
        for kind, graph in encoder_graphs(fused, pixels[:2], examples).items():
            exported = export_onnx(
                graph.module,
                graph.example,
                Path(tmp) / f"{kind}.onnx",
                graph.inputs,
                graph.output,
                graph.dynamic_axes,
                constant_folding=False,
            )
            template = f"{tag}-{kind}.onnx.gz"
            data_file = f"{kind}_encoder.onnx.data"
            slots = _strip_weights(exported, out_dir / template, data_file, keys)
            graphs[kind] = GraphTemplate(template, f"{kind}_encoder.onnx", data_file, graph.inputs, graph.output, slots)
            write_graph(out_dir, graphs[kind], train_state, plan, Path(tmp))
            actual = onnx_outputs(Path(tmp) / graphs[kind].package_file, feeds[kind])
            diffs[kind] = float(np.abs(_unit(actual) - _unit(expected[kind])).max())
    if not max(diffs.values()) <= _CHECK_BOUND:  # also catches NaN
        raise ImportFailed(f"{tag}: the filled template differs from PyTorch by {diffs} (normalised features)")
    descriptor = TemplateDescriptor(
        architecture=_architecture(fused),
        models=tuple(_entry(name) for name in names),
        checkpoint_layout=layout,
        fusions=plan,
        image=graphs["image"],
        text=graphs["text"],
        check=TemplateCheck(diffs["image"], diffs["text"], torch.__version__, ort.__version__),
    )
    write_descriptor(out_dir, descriptor)
    return descriptor
