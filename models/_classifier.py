"""The module every entrypoint returns: a network that knows its preprocessing and labels."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Collection, Iterator
from typing import Any

import torch
from torch import nn
from torchvision.models._api import WeightsEnum
from typing_extensions import Unpack

from ..errors import InputTypeError, ModelCannotError, NonFiniteOutputError, OptionError
from ..runconfig import RunConfig, RunKwargs
from ..transforms import DEFAULT_MAX_PIXELS, TensorPreprocess, prepared_batches
from ..validation import PixelLimit, count_option
from ._explain import penultimate_layer
from ._meta import describe
from ._predict import features_of, iter_batches, single_input
from ._results import Prediction, Predictions, Timings, TopK
from ._runtime import (
    PRECISIONS,
    NetworkRunner,
    RunOptions,
    auto_compile,
    build_runner,
    check_precision,
    default_precision,
    resolve_device,
    state_fingerprint,
)

MAX_K = 1000  # the most classes a k may ask for (ImageNet's); a model with more classes allows its count
logger = logging.getLogger(__name__)


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
        self.meta: dict[str, Any] = describe(
            arch,
            weights,
            self.preprocess,
            weights_file,
            user_categories=categories,
            num_params=sum(parameter.numel() for parameter in net.parameters()),
        )
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
        """Logits ``[B, classes]`` of a preprocessed float batch ``[B, 3, H, W]``, as torchvision's models.

        Anything else (a PIL image, a path, uint8 pixels) is an :class:`~top5hub.errors.InputTypeError` (a
        ``TypeError``) saying to call ``predict`` or to apply ``preprocess`` first."""
        if not isinstance(x, (torch.Tensor, torch.fx.Proxy)) or (
            isinstance(x, torch.Tensor) and not x.is_floating_point()
        ):
            raise InputTypeError(_forward_takes(x))
        return self.net(x)

    def to_precision(self, precision: str) -> Top5Classifier:
        """Convert the weights to ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only); inputs follow.

        Converting the model, not autocasting each call, is what makes bf16 fast on CPU.
        """
        if precision not in PRECISIONS:
            raise OptionError(
                f"to_precision takes {', '.join(PRECISIONS)}, got {precision!r} (for int8: predict(precision='int8'))"
            )
        return self.to(PRECISIONS[check_precision(precision, next(self.parameters()).device)])

    def runner(
        self, precision: str | None = None, /, *, config: RunConfig | None = None, **options: Unpack[RunKwargs]
    ) -> NetworkRunner:
        """The network as ``predict`` runs it for a :class:`RunConfig` (or its fields as keywords): a converted
        copy, cached per set of options.

        ``precision="auto"``: the model's own dtype if it was converted, else bf16 on
        CPUs with native bf16, fp16 on CUDA, fp32 otherwise. The copy is made again
        whenever the model's parameters or buffers changed since (see ``state_fingerprint``).
        A model converted by :meth:`to_precision` cannot run at a higher precision: its weights were rounded.
        ``precision="int8"`` (CPU) is calibrated on ``calibration`` (image paths or folders; default:
        ``$TOP5HUB_CALIBRATION``); ``backend="openvino"`` runs the network in OpenVINO (fp32, bf16 or int8).
        ``compile=None`` runs eagerly here (``predict`` decides by the job's size).
        """
        if precision is not None:
            options["precision"] = precision
        config = RunConfig.of(config, **options)
        parameter = next(self.parameters())
        device = parameter.device if config.device is None else resolve_device(config.device)
        own = next((name for name, dtype in PRECISIONS.items() if dtype == parameter.dtype), "fp32")
        precision = config.precision
        if precision == "auto":
            precision = own if own != "fp32" else default_precision(device)
        elif own != "fp32" and precision != own:
            raise OptionError(
                f"precision={precision!r}, but this model's weights were converted to {own} (to_precision): "
                f"running them as {precision} would not give {precision} answers. Load the model again for "
                f"{precision}, or pass precision='auto' (or {own!r})"
            )
        precision = check_precision(precision, device, config.backend)
        size = (self.meta["crop_size"], self.meta["crop_size"])
        key = RunOptions(
            device,
            precision,
            config.channels_last,
            bool(config.compile),
            config.cuda_graphs,
            input_size=size,
            backend=config.backend,
            calibration=config.calibration,
        )
        fingerprint = state_fingerprint(self.net)
        cached = self._runners.get(key)
        if cached is None or cached[0] != fingerprint:
            self._runners[key] = (fingerprint, build_runner(self.net, key, self.tensor_preprocess))
        return self._runners[key][1]

    def __getstate__(self) -> dict[str, Any]:
        """Pickling and deep copies leave out the converted copies: they hold compiled code and CUDA graphs."""
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        return {**state, "_runners": {}}

    def decode(self, logits: torch.Tensor, k: int = 5) -> list[TopK]:
        """Per row of logits, the ``k`` best ``(index, label, probability)``, probabilities by softmax.

        Takes logits, as torchvision's and timm's models return them (``model(x)``); to decode
        probabilities you already have, pass their log (``probabilities.log()``): softmax undoes it.
        """
        k = self.check_k(k)
        logits = logits.detach().float()
        if logits.ndim == 1:
            logits = logits.unsqueeze(0)
        if not torch.isfinite(logits).all():
            raise NonFiniteOutputError(
                f"decode: the logits of {self.meta['arch']} hold NaN or infinite values, which no probability "
                "describes: its weights are broken, or it overflowed at a low precision (try fp32)"
            )
        values, indices = logits.softmax(dim=-1).topk(k, dim=-1)
        return [
            [(index, self.categories[index], value) for index, value in zip(row_indices, row_values, strict=True)]
            for row_indices, row_values in zip(indices.tolist(), values.tolist(), strict=True)
        ]

    def decode_top5(self, logits: torch.Tensor) -> list[TopK]:
        """:meth:`decode` with ``k=5``: the lab's top-5."""
        return self.decode(logits, 5)

    def predict(self, inputs: Any, **options: Unpack[PredictKwargs]) -> Predictions:
        """Classify images of any kind: paths, directories, globs, URLs, bytes, PIL, numpy, tensors.

        An input that cannot be read gets a :class:`Prediction` with ``error`` set; the others are
        still classified.

        Args:
            inputs: one input or a list of them (a generator streams, see :meth:`iter_predict`).
            k: classes per image (any integer type; not a bool or a float).
            max_pixels: refuse larger images as possible decompression bombs; ``None``: no limit
                (default: ``TOP5HUB_MAX_PIXELS``, 100 M).
            progress: a progress line on stderr (done, unreadable, images/s, ETA when the count is known).
            explain: give each prediction a ``heatmap`` of its top-1 class (Grad-CAM on the last
                convolutional stage, on the model's own weights in their own dtype: about one more forward and
                backward).
            config: a :class:`RunConfig`; its fields may also be given as keywords (they override it):
                precision: "auto" (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32), "fp32", "bf16",
                    "fp16", or "int8" (CPU: calibrated once on ``calibration``, then cached on disk).
                backend: "torch", or "openvino" (CPU; ``pip install openvino``, and ``nncf`` for int8).
                compile: torch.compile the network: a slow first batch, faster after. ``None`` (default):
                    compile when the job is large enough to amortise it (``TOP5HUB_AUTO_COMPILE_IMAGES``, known
                    image count; the progress line says so), else run eagerly.
                channels_last: run the network in channels-last memory format (faster on CPU and GPU).
                cuda_graphs: on CUDA, capture a graph per batch shape and replay it.
                calibration: images to calibrate int8 on (paths, folders or globs); default
                    ``$TOP5HUB_CALIBRATION``.
                device: where the network runs (default: the model's own device).
                batch_size: images per forward pass (any integer type; default 32).
                workers: DataLoader processes decoding beside the forward pass (0: in this process).

        A float tensor is taken as already preprocessed: it must be what ``model.preprocess`` returns,
        ``[3, crop, crop]`` normalised with the weights' mean and std; anything else gets an error saying so.
        Results from bytes, URLs, PIL images, arrays and tensors keep a JPEG thumbnail (about 20 KB) to
        draw their figure; stream with :meth:`iter_predict` to hold none of them. The results know where the time
        went (``timings``: decode and forward, ``print()`` shows them) and whether one image was given (``single``).
        """
        timings = Timings()
        predictions = list(self.iter_predict(inputs, timings=timings, **options))
        return Predictions(predictions, timings=timings, single=single_input(inputs))

    def iter_predict(
        self, inputs: Any, *, timings: Timings | None = None, **options: Unpack[PredictKwargs]
    ) -> Iterator[Prediction]:
        """:meth:`predict` as a stream, one :class:`Prediction` at a time: memory does not grow with
        the number of images. Takes :meth:`predict`'s keyword arguments; ``timings`` (a :class:`Timings`) adds up
        the decode and forward time as the stream runs."""
        for batch in self.iter_predict_batches(inputs, timings=timings, **options):
            yield from batch

    def iter_predict_batches(
        self,
        inputs: Any,
        *,
        k: int = 5,
        max_pixels: PixelLimit = DEFAULT_MAX_PIXELS,
        progress: bool = False,
        explain: bool = False,
        embeddings: bool = False,
        skip: Collection[str] = (),
        shard: tuple[int, int] = (0, 1),
        config: RunConfig | None = None,
        timings: Timings | None = None,
        **options: Unpack[RunKwargs],
    ) -> Iterator[list[Prediction]]:
        """:meth:`predict` as a stream of batches, with more options for the command-line tools.

        ``embeddings``: give each prediction its penultimate features (``embedding``, as :meth:`embed`).
        ``skip``: inputs to leave out, by ``transforms.source_key`` (resuming). ``shard=(rank, world)``:
        classify only this process's share, every ``world``-th input from ``rank`` on (torchrun). ``timings``: a
        :class:`Timings` that adds up the time spent waiting for prepared images and running the network.
        """
        config = RunConfig.of(config, **options)
        self._warn_if_random()
        return iter_batches(
            self,
            inputs,
            config,
            k=k,
            max_pixels=max_pixels,
            progress=progress,
            explain=explain,
            embeddings=embeddings,
            skip=skip,
            shard=shard,
            timings=timings,
        )

    def compile_plan(
        self, count: int | None, config: RunConfig | None = None, **options: Unpack[RunKwargs]
    ) -> tuple[bool, str | None]:
        """Whether a job of ``count`` images compiles, and the progress line's note when the default chose it:
        ``compile=True``/``False`` as given (no note); ``None`` decides by the count
        (``TOP5HUB_AUTO_COMPILE_IMAGES``)."""
        config = RunConfig.of(config, **options)
        if config.compile is not None:
            return config.compile, None
        parameter = next(self.parameters())
        device = parameter.device if config.device is None else resolve_device(config.device)
        note = auto_compile(count, device, config.backend, config.precision)
        return note is not None, note

    def check_k(self, k: int) -> int:
        """``k`` checked (an integer from 1 to 1000, or to the class count when there are more), then clipped to
        this model's class count with a note, as Hugging Face's pipeline does: a fine-tuned model of 3 classes
        answers ``k=5`` with its 3."""
        classes = len(self.categories)
        k = count_option("k", k, minimum=1, maximum=max(classes, MAX_K))
        if k > classes:
            logger.info("k=%d is more than the %d classes of %s: giving %d", k, classes, self.meta["arch"], classes)
            return classes
        return k

    def _warn_if_random(self) -> None:
        if not self.meta["pretrained"] and not self._warned_random:
            self._warned_random = True
            warnings.warn(
                f"{self.meta['arch']} has random weights (pretrained=False or weights=None): its top-k are "
                "meaningless, fit for timing only. Load it with pretrained=True or weights_path= for real answers.",
                stacklevel=5,  # the caller of predict
            )

    def explained_layer(self) -> nn.Module:
        """The layer Grad-CAM explains (the registry's ``cam_layer``), or an error saying the model has none."""
        if self.cam_layer is None:
            raise ModelCannotError(
                f"{self.meta['arch']} has no convolutional stage to explain (it is a transformer): explain=True "
                "works for the CNNs (ResNet, AlexNet, DenseNet, EfficientNet(-Lite), VGG, MobileNet, ConvNeXt, ...)"
            )
        return self.net.get_submodule(self.cam_layer)

    def embed(
        self,
        inputs: Any,
        *,
        normalize: bool = False,
        batch_size: int = RunConfig.batch_size,
        workers: int = RunConfig.workers,
        max_pixels: PixelLimit = DEFAULT_MAX_PIXELS,
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
            for item, row in zip(batch, features_of(self.net, batch), strict=True):
                if row is None:
                    warnings.warn(f"embed: no features for {item.error}", stacklevel=2)
                rows.append(torch.full((width,), float("nan")) if row is None else row)
        matrix = torch.stack(rows)
        return torch.nn.functional.normalize(matrix, dim=1) if normalize else matrix

    @property
    def embedding_size(self) -> int:
        """D, the length of :meth:`embed`'s rows: the input width of the classifier's last linear layer."""
        return penultimate_layer(self.net).in_features


def _forward_takes(x: Any) -> str:
    """Why ``model(x)`` refuses ``x``, and the two calls that take it."""
    kind = f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else f"a {type(x).__module__}.{type(x).__name__}"
    return (
        f"model(x) takes a preprocessed float tensor [B, 3, H, W] (as torchvision's models), not {kind}: call "
        "model.predict(image) for its top-k classes (any image: PIL, path, URL, array, uint8 tensor), or "
        "model(model.preprocess(image).unsqueeze(0)) for its logits"
    )


class PredictKwargs(RunKwargs, total=False):
    """:meth:`Top5Classifier.predict`'s keyword arguments: the run options and what to return."""

    k: int
    max_pixels: PixelLimit
    progress: bool
    explain: bool
    config: RunConfig | None
