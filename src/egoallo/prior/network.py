"""The EgoAllo denoiser: a Transformer that predicts the clean motion x0.

Conditioning tokens `(B, T, d_cond)` (see `egoallo.prior.conditioning`) go through a
Transformer encoder; noisy-state tokens `(B, T, d_state)` go through a Transformer
decoder that cross-attends to the encoder output (queries from the state, keys and
values from the conditioning). The noise level enters as one extra token prepended
to both sequences and dropped from the output. Rotary position embeddings act per
head on the queries and keys of every attention. Blocks are post-norm.

Module and parameter names match the reference release, so its state dicts load
as they are (`egoallo.prior.checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from egoallo.body.skeleton import NUM_BODY_JOINTS, NUM_JOINTS

from .conditioning import CondParam, ConditioningConfig

NUM_BETAS = 16
NUM_LOCAL_BODY_JOINTS = NUM_BODY_JOINTS - 1  # 21: joints 1..21, the pelvis pose is global.
NUM_HAND_JOINTS = NUM_JOINTS - NUM_BODY_JOINTS  # 30: 15 per hand.

Activation = Literal["gelu", "relu"]


_SIZE_RANGES = {
    "d_latent": (2, 16384), "d_feedforward": (1, 65536), "d_noise_emb": (1, 16384), "num_heads": (1, 256),
    "encoder_layers": (0, 256), "decoder_layers": (1, 256), "fourier_enc_freqs": (0, 64), "max_t": (1, 100_000),
}  # fmt: skip
"""Sizes a config may hold (far beyond any trained one; outside them the network cannot be built)."""


@dataclass(frozen=True)
class EgoDenoiserConfig:
    """Denoiser hyperparameters; the fields (and their names) are the reference's.

    The defaults are the `"default"` preset (see `PRESETS`), sized for CPU training.
    """

    d_latent: int = 128
    d_feedforward: int = 512
    d_noise_emb: int = 128
    num_heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    cond_param: CondParam = "ours"
    fourier_enc_freqs: int = 3
    include_canonicalized_cpf_rotation_in_cond: bool = True
    include_hands: bool = True
    include_hand_positions_cond: bool = False
    """Only `False` is supported (the reference's extra hand-position conditioning)."""
    positional_encoding: Literal["rope"] = "rope"
    noise_conditioning: Literal["token"] = "token"
    xattn_mode: Literal["kv_from_cond_q_from_x"] = "kv_from_cond_q_from_x"
    max_t: int = 1000
    activation: Activation = "gelu"
    dropout_p: float = 0.0

    def __post_init__(self) -> None:
        only = {
            "include_hand_positions_cond": False,
            "positional_encoding": "rope",
            "noise_conditioning": "token",
            "xattn_mode": "kv_from_cond_q_from_x",
        }
        for name, supported in only.items():
            if getattr(self, name) != supported:
                raise ValueError(f"{name}={getattr(self, name)!r} is not supported; only {supported!r}.")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"Unknown activation {self.activation!r}; expected 'gelu' or 'relu'.")
        for name, (low, high) in _SIZE_RANGES.items():
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range; expected {low} to {high}.")
        if not 0.0 <= self.dropout_p < 1.0:
            raise ValueError(f"dropout_p={self.dropout_p!r} is out of range; expected 0 <= dropout_p < 1.")
        head_dim, remainder = divmod(self.d_latent, self.num_heads)
        if remainder or head_dim % 2:
            raise ValueError(
                f"d_latent ({self.d_latent}) must split into {self.num_heads} heads of even size (rotary pairs)."
            )
        _ = self.conditioning  # Validates cond_param and fourier_enc_freqs.

    @property
    def conditioning(self) -> ConditioningConfig:
        """The conditioning this network expects."""
        return ConditioningConfig(
            self.cond_param, self.fourier_enc_freqs, self.include_canonicalized_cpf_rotation_in_cond
        )

    @property
    def d_cond(self) -> int:
        """Conditioning size per frame (154 for `"ours"`)."""
        return self.conditioning.dim

    @property
    def modality_dims(self) -> dict[str, int]:
        """Sizes of the packed state's parts, in packing order."""
        dims = {"betas": NUM_BETAS, "body_rotmats": NUM_LOCAL_BODY_JOINTS * 9, "contacts": NUM_LOCAL_BODY_JOINTS}
        if self.include_hands:
            dims["hand_rotmats"] = NUM_HAND_JOINTS * 9
        return dims

    @property
    def d_state(self) -> int:
        """Packed state size per frame: 496 with hands, 226 without."""
        return sum(self.modality_dims.values())


PRESETS: dict[str, EgoDenoiserConfig] = {
    # The paper's model (50.4 M parameters).
    "paper": EgoDenoiserConfig(
        d_latent=512, d_feedforward=2048, d_noise_emb=1024, num_heads=4, encoder_layers=6, decoder_layers=6
    ),
    # 1.9 M parameters (7.8 MB float32): trains on a 2-core CPU within about an hour.
    "default": EgoDenoiserConfig(),
    # Larger teachers for distillation into the default-sized student (#23's sweep): 5.2 M and 9.0 M parameters.
    "medium": EgoDenoiserConfig(d_latent=192, d_feedforward=768, d_noise_emb=192, encoder_layers=4, decoder_layers=4),
    "large": EgoDenoiserConfig(d_latent=256, d_feedforward=1024, d_noise_emb=256, encoder_layers=4, decoder_layers=4),
}


def _activation(name: Activation) -> nn.Module:
    return nn.GELU() if name == "gelu" else nn.ReLU()


def _modality_encoder(d_in: int, config: EgoDenoiserConfig) -> nn.Sequential:
    d = config.d_latent
    return nn.Sequential(
        nn.Linear(d_in, d), _activation(config.activation),
        nn.Linear(d, d), _activation(config.activation),
        nn.Linear(d, d),
    )  # fmt: skip


def _modality_decoder(d_out: int, config: EgoDenoiserConfig) -> nn.Sequential:
    d = config.d_latent
    return nn.Sequential(
        nn.Linear(d, d), nn.LayerNorm(d), _activation(config.activation),
        nn.Linear(d, d), _activation(config.activation),
        nn.Linear(d, d_out),
    )  # fmt: skip


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over the last dimension, as `rotary-embedding-torch`
    applies it with default settings: frequencies `10000^(-2i/dim)`, each acting on the
    interleaved pair `(x[2i], x[2i+1])`."""

    freqs: Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("freqs", 1.0 / 10000 ** (torch.arange(0, dim, 2).float() / dim))

    def forward(self, x: Tensor) -> Tensor:
        """Rotate `x (..., n, dim)` by the angles of positions `0..n-1`."""
        positions = torch.arange(x.shape[-2], device=x.device, dtype=self.freqs.dtype)
        angles = (positions[:, None] * self.freqs).repeat_interleave(2, dim=-1)
        pairs = x.unflatten(-1, (-1, 2))
        rotated_half = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
        return x * angles.cos().to(x.dtype) + rotated_half * angles.sin().to(x.dtype)


class TransformerBlock(nn.Module):
    """Post-norm block: self-attention, optional cross-attention, feed-forward."""

    def __init__(self, config: EgoDenoiserConfig, cross_attention: bool) -> None:
        super().__init__()
        d = config.d_latent
        self.num_heads = config.num_heads
        self.rotary_emb = RotaryEmbedding(d // config.num_heads)
        self.sattn_qkv_proj = nn.Linear(d, 3 * d, bias=False)
        self.sattn_out_proj = nn.Linear(d, d, bias=False)
        self.layernorm1 = nn.LayerNorm(d)
        self.cross_attention = cross_attention
        if cross_attention:
            self.xattn_q_proj = nn.Linear(d, d, bias=False)
            self.xattn_kv_proj = nn.Linear(d, 2 * d, bias=False)
            self.xattn_out_proj = nn.Linear(d, d, bias=False)
            self.xattn_layernorm = nn.LayerNorm(d)
        self.mlp0 = nn.Linear(d, config.d_feedforward)
        self.mlp1 = nn.Linear(config.d_feedforward, d)
        self.layernorm2 = nn.LayerNorm(d)
        self.activation = _activation(config.activation)
        self.dropout = nn.Dropout(config.dropout_p)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None) -> Tensor:
        """Multi-head attention with rotary q/k: `(B, N, d), (B, M, d) x2, (B, M) -> (B, N, d)`."""
        q, k, v = (y.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for y in (q, k, v))
        q, k = self.rotary_emb(q), self.rotary_emb(k)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        dropout_p = self.dropout.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        return out.transpose(1, 2).flatten(-2)

    def forward(
        self, x: Tensor, mask: Tensor | None, memory: Tensor | None = None, memory_mask: Tensor | None = None
    ) -> Tensor:
        """`x (B, N, d)` with key mask `(B, N)`; `memory (B, M, d)` with `(B, M)` for cross-attention."""
        q, k, v = self.sattn_qkv_proj(x).chunk(3, dim=-1)
        x = self.layernorm1(x + self.dropout(self.sattn_out_proj(self._attend(q, k, v, mask))))
        if self.cross_attention:
            assert memory is not None
            k, v = self.xattn_kv_proj(memory).chunk(2, dim=-1)
            xattn = self._attend(self.xattn_q_proj(x), k, v, memory_mask)
            x = self.xattn_layernorm(x + self.dropout(self.xattn_out_proj(xattn)))
        mlp = self.mlp1(self.dropout(self.activation(self.mlp0(x))))
        return self.layernorm2(x + self.dropout(mlp))


class EgoDenoiser(nn.Module):
    """Predicts the clean packed state x0 `(B, T, d_state)` from a noisy one."""

    def __init__(self, config: EgoDenoiserConfig) -> None:
        super().__init__()
        self.config = config
        dims = config.modality_dims
        self.encoders = nn.ModuleDict({name: _modality_encoder(dim, config) for name, dim in dims.items()})
        self.decoders = nn.ModuleDict({name: _modality_decoder(dim, config) for name, dim in dims.items()})
        self.latent_from_cond = nn.Linear(config.d_cond, config.d_latent)
        self.noise_emb = nn.Embedding(config.max_t, config.d_noise_emb)
        self.noise_emb_token_proj = nn.Linear(config.d_noise_emb, config.d_latent, bias=False)
        self.encoder_layers = nn.ModuleList(
            [TransformerBlock(config, cross_attention=False) for _ in range(config.encoder_layers)]
        )
        self.decoder_layers = nn.ModuleList(
            [TransformerBlock(config, cross_attention=True) for _ in range(config.decoder_layers)]
        )

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        """x0 prediction `(B, T, d_state)`, rotations not projected onto SO(3).

        Args:
            x_t: noisy packed state `(B, T, d_state)`.
            t: integer noise levels `(B,)` in `1..max_t`.
            cond: conditioning `(B, T, d_cond)`.
            mask: `(B, T)` bool, True for valid frames. Padded frames are hidden from
                every attention (the reference hides them only from cross-attention);
                without a mask (or an all-True one) the output equals the reference's.
        """
        B, T, _ = x_t.shape
        if x_t.shape[-1] != self.config.d_state or cond.shape != (B, T, self.config.d_cond):
            raise ValueError(
                f"Expected x_t (B, T, {self.config.d_state}) and cond (B, T, {self.config.d_cond}); "
                f"got {tuple(x_t.shape)} and {tuple(cond.shape)}."
            )
        noise_token = self.noise_emb_token_proj(self.noise_emb(t - 1))[:, None, :]
        token_mask = None if mask is None else F.pad(mask.bool(), (1, 0), value=True)

        cond_tokens = torch.cat([noise_token, self.latent_from_cond(cond)], dim=1)
        for layer in self.encoder_layers:
            cond_tokens = layer(cond_tokens, token_mask)

        parts = torch.split(x_t, list(self.config.modality_dims.values()), dim=-1)
        x_tokens = sum(encoder(part) for encoder, part in zip(self.encoders.values(), parts))
        x_tokens = torch.cat([noise_token, x_tokens], dim=1)
        for layer in self.decoder_layers:
            x_tokens = layer(x_tokens, token_mask, memory=cond_tokens, memory_mask=token_mask)

        out = x_tokens[:, 1:, :]
        return torch.cat([decoder(out) for decoder in self.decoders.values()], dim=-1)
