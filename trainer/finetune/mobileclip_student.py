"""The student of a MobileCLIP album fine-tune: which parts of each tower train, and the frozen parts whose outputs
are computed once and cached.

What trains, and why (CPU first, the same on a GPU):

* Image tower (MCi / FastViT): the stem and the first stages stay frozen; the last ``image_blocks`` units of the trunk
  (default 2: the last two attention blocks; downsamplers and position encodings count as units), the final conv and the
  head projection train. The early stages compute generic edges and textures that a few hundred album photos cannot
  improve, and they run at high resolution, so back-propagating through them would cost most of a step. The last stage
  works on an 8x8 grid at 256 px and is where a photo becomes "what it shows": that is where a pet's or a place's look
  has to be told apart. Because the frozen part is a fixed function, its output is computed once per stored augmentation
  (``frozen_image_features``) and training runs only the trainable tail, which is what makes fine-tuning fast on a
  2-core CPU.
* BatchNorm: every layer stays in eval mode while training. The running statistics of a pre-trained model are
  better estimates than a 32-photo batch gives, training-mode BN would make the trained function differ from the
  exported one, and reparameterization folds exactly those statistics into the inference convs.
* Text tower: token embeddings and the lower layers stay frozen (a user's new word is made of sub-word tokens the
  model already has; moving shared token embeddings would shift every caption that uses them); the top
  ``text_layers`` layers (default 2), the final LayerNorm, the projection and the logit scale train, so label
  words can move in the joint space. The frozen part of each caption is computed once (``cache_captions``).

The student follows the training loop's contract: ``encode_image(cached features)``, ``encode_text(tokens or
caption ids)`` and ``logit_scale``; ``model`` is the whole train-time MobileCLIP that gets exported afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from trainer.finetune.tuner import FinetuneError
from trainer.models.clip import MobileCLIP
from trainer.models.fastvit_timm import FastVitImageEncoder
from trainer.models.mci import MCiImageEncoder
from trainer.models.reparam import reparameterize_model
from trainer.models.text_common import check_input_ids, eot_positions, gather_rows
from trainer.models.text_openclip import OpenClipTextTransformer
from trainer.models.text_v1 import TextTransformerV1

IMAGE_BLOCKS = 2
TEXT_LAYERS = 2


def _units(modules: list[nn.Module]) -> list[nn.Module]:
    """Stage modules with each block list opened up: downsampler, position encoding, then each block, per stage."""
    opened = [unit for module in modules for unit in (module if isinstance(module, nn.Sequential) else [module])]
    return [unit for unit in opened if not isinstance(unit, nn.Identity)]


def image_split(model: MobileCLIP, blocks: int) -> tuple[list[nn.Module], list[nn.Module]]:
    """(frozen modules, trainable modules) of the image tower, each run in order; their composition is the tower.

    The trunk after the stem is a list of units (downsamplers, position encodings and blocks, stage by stage); the
    last ``blocks`` units train, with the final conv and the head projection. Raises FinetuneError for image towers
    other than MCi / FastViT (the ViT-B and L/14 variants) and for a count outside ``[0, number of units]``.
    """
    tower = model.image_tower
    if isinstance(tower, MCiImageEncoder):
        trunk = tower.model
        modules = list(trunk.network)
        stem, final, head = trunk.patch_embed, trunk.conv_exp, trunk.head
    elif isinstance(tower, FastVitImageEncoder):
        trunk = tower.trunk
        modules = [m for stage in trunk.stages for m in (stage.downsample, stage.pos_emb, stage.blocks)]
        stem, final, head = trunk.stem, trunk.final_conv, trunk.head
    else:
        raise FinetuneError(
            f"{model.info.display} has a ViT image tower; album fine-tuning supports the MCi (FastViT) towers "
            "of MobileCLIP-S0-S4 and MobileCLIP2-S0-S4"
        )
    units = _units(modules)
    if not 0 <= blocks <= len(units):
        raise FinetuneError(f"image_blocks must lie in [0, {len(units)}], got {blocks}")
    cut = len(units) - blocks
    return [stem, *units[:cut]], [*units[cut:], final, head]


def _text_parts(model: MobileCLIP) -> tuple[Callable[[Tensor], Tensor], nn.ModuleList, nn.Module, nn.Parameter]:
    """(token ids -> embedded tokens, layers, final norm, projection) of the text tower, as its forward uses them."""
    tower = model.text_tower
    if isinstance(tower, TextTransformerV1):

        def embed(ids: Tensor) -> Tensor:
            x = tower.embedding_layer(ids)
            return x + tower.positional_embedding().to(x.dtype)

        return embed, tower.transformer, tower.final_layer_norm, tower.projection_layer
    if isinstance(tower, OpenClipTextTransformer):

        def embed(ids: Tensor) -> Tensor:
            return tower.token_embedding(ids) + tower.positional_embedding.to(tower.token_embedding.weight.dtype)

        return embed, tower.transformer.resblocks, tower.ln_final, tower.text_projection
    raise FinetuneError(f"unknown text tower {type(tower).__name__}")


class MobileCLIPAlbumStudent(nn.Module):
    """A MobileCLIP model with a frozen head of each tower whose outputs are cached (see the module notes)."""

    def __init__(
        self,
        model: MobileCLIP,
        image_blocks: int = IMAGE_BLOCKS,
        text_layers: int = TEXT_LAYERS,
        text_only: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        # Plain lists: the modules are registered once, under ``model``, so state dicts keep the checkpoint keys.
        self._frozen_image, self._trainable_image = image_split(model, image_blocks)
        self._embed, layers, final_norm, projection = _text_parts(model)
        if not 0 <= text_layers <= len(layers):
            raise FinetuneError(f"text_layers must lie in [0, {len(layers)}], got {text_layers}")
        self.image_blocks, self.text_layers = image_blocks, text_layers
        self.first_trained = len(layers) - text_layers
        self._layers, self._final_norm, self._projection = layers, final_norm, projection
        for param in model.parameters():
            param.requires_grad_(False)
        self.text_only = text_only  # the image tower stays the base's: photos need no re-embedding
        trained = [*([] if text_only else self._trainable_image), *layers[self.first_trained :], final_norm]
        for module in trained:
            for param in module.parameters():
                param.requires_grad_(True)
        projection.requires_grad_(True)
        model.logit_scale.requires_grad_(True)
        self._cached: tuple[Tensor, Tensor] | None = None
        self._fused_frozen: list[nn.Module] | None = None
        self.model.eval()

    @property
    def logit_scale(self) -> nn.Parameter:
        """The model's learnable log-scale (the loop clamps ``exp`` at 100)."""
        return self.model.logit_scale

    def train(self, mode: bool = True) -> MobileCLIPAlbumStudent:
        """The model stays in eval mode: BatchNorm keeps its running statistics (see the module notes)."""
        super().train(mode)
        self.model.eval()
        return self

    def trainable_counts(self) -> dict[str, int]:
        """Trainable and total parameters, for the model card."""
        trained = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return {"trainable_parameters": trained, "parameters": sum(p.numel() for p in self.model.parameters())}

    @torch.no_grad()
    def frozen_image_features(self, pixels: Tensor) -> Tensor:
        """The frozen part of the image tower on preprocessed ``pixels`` ``[N, 3, R, R]``.

        Computed by a reparameterized copy of the frozen modules: the exported graph runs that same fused form, and
        it is several times faster than the train-time branches (they agree within ~1e-5 relative).
        """
        if self._fused_frozen is None or next(self._fused_frozen[0].parameters()).device != pixels.device:
            self._fused_frozen = [reparameterize_model(m).eval().to(pixels.device) for m in self._frozen_image]
        x = pixels
        for module in self._fused_frozen:
            x = module(x)
        return x

    def encode_image(self, features: Tensor) -> Tensor:
        """Raw image features ``[N, D]`` from ``frozen_image_features`` outputs (the trainable tail runs)."""
        x = features.to(torch.float32)
        for module in self._trainable_image:
            x = module(x)
        return x

    def encode_text(self, tokens: Tensor) -> Tensor:
        """Raw text features of token ids ``[N, 77]`` (the whole tower), or of rows ``[N]`` of the caption table
        given to ``cache_captions`` (only the trainable top layers run then)."""
        if tokens.ndim == 2:
            return self.model.encode_text(tokens)
        if self._cached is None:
            raise ValueError("1-d text input means caption ids, but no captions were cached")
        hidden, eot = self._cached
        rows, inverse = tokens.unique(return_inverse=True)  # label prompts repeat within a batch: run each once
        x, pos = hidden[rows.cpu()].to(tokens.device), eot[rows.cpu()].to(tokens.device)
        for layer in self._layers[self.first_trained :]:
            x = layer(x)
        pooled = gather_rows(self._final_norm(x), pos) @ self._projection
        return pooled[inverse]

    @torch.no_grad()
    def cache_captions(self, tokens: Tensor, eot_index: Tensor | None = None, batch: int = 64) -> None:
        """Run the frozen part of the text tower once for a caption table ``[C, 77]``; kept on the CPU."""
        check_input_ids(tokens, self.model.text_tower.context_length)
        device = self.model.logit_scale.device
        parts = []
        for start in range(0, len(tokens), batch):
            x = self._embed(tokens[start : start + batch].to(device))
            for layer in self._layers[: self.first_trained]:
                x = layer(x)
            parts.append(x.cpu())
        self._cached = (torch.cat(parts), eot_positions(tokens, eot_index).cpu())
