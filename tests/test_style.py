"""Style that holds without review: ruff passes on src, scripts and tests with the project's settings
(pyproject.toml, [tool.ruff]), and no docstring or comment of the package quotes a timing or a speed-up: source
states what the code computes; measurements belong in `make bench`'s output and in notes."""
import ast
import importlib.util
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "shiftlab"
LINTED = ("src", "scripts", "tests")

NUMBER = r"(?<![\w.-])\d+(?:[.,]\d+)?"   # not the tail of a name (ResNet-18s, conv2)
DURATION = r"(?:ns|µs|us|ms|s|sec|min|h)"
ARROW = r"(?:->|→)"
# A quoted timing or speed-up: a duration before or after an arrow ("3.5 s -> 2.7 s", "13 ms -> 257 ms"), a factor
# faster or slower ("1.37x faster"), a share of a run ("1.3 s of every start", "15 % of a training step"), page
# faults, a duration that was taken or measured ("took 1.3 s"), any duration in milliseconds or finer, a measured rate
# ("850 images/s", "12 GFLOP/s"). Case-sensitive units, so formulas (H -> H/s, 3s, 4x4, 16-32-64 -> 64-128-256)
# do not match.
TIMING = re.compile(rf"""
      {NUMBER}\s?{DURATION}\s?{ARROW}
    | {ARROW}\s?{NUMBER}\s?{DURATION}\b
    | {NUMBER}\s?[x×]\s+(?i:faster|slower|quicker|speed-?up|as\s+fast|the\s+speed)
    | (?i:speed-?up|faster|slower)\s+(?:of|by)\s+{NUMBER}
    | {NUMBER}\s?{DURATION}\s+of\b
    | {NUMBER}\s?%\s+(?:(?i:faster|slower)
                    |of\s+(?:a|the|each|every)\s+(?:[\w-]+\s+){{0,2}}(?:step|run|start|time|epoch)s?\b)
    | (?i:page\s+faults?)
    | \b(?i:took|takes|measured|timed)\b[^.;\n]{{0,40}}?{NUMBER}\s?(?:{DURATION}|seconds?|minutes?|hours?)\b
    | {NUMBER}\s?(?:ns|µs|us|ms)\b
    | {NUMBER}\s?[kM]?\s?(?:images?|img|it|samples?|steps?)/s\b
    | {NUMBER}\s?[GMT]FLOP/s
""", re.X)


def python_texts(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every comment and every string statement (docstrings, attribute docstrings) of a file."""
    source = path.read_text(encoding="utf-8")
    texts = [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
             if tok.type == tokenize.COMMENT]
    texts += [(node.lineno, node.value.value) for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
              and isinstance(node.value.value, str)]
    return texts


def cpp_texts(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every // and /* */ comment of a C++ file (string and character literals skipped)."""
    source = path.read_text(encoding="utf-8")
    found = re.finditer(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|//[^\n]*|/\*.*?\*/', source, re.S)
    return [(source.count("\n", 0, m.start()) + 1, m.group()) for m in found if m.group().startswith("/")]


def timings(texts: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(line, the quoted timing with some context) of each match of TIMING in texts."""
    hits = []
    for line, text in texts:
        for m in TIMING.finditer(text):
            hits.append((line + text.count("\n", 0, m.start()), text[max(0, m.start() - 40):m.end() + 20].strip()))
    return hits


def ruff_command() -> list[str]:
    """The venv's ruff (installed beside this interpreter by the test extra), else ``python -m ruff``."""
    beside = Path(sys.executable).with_name("ruff.exe" if sys.platform == "win32" else "ruff")
    if beside.is_file():
        return [str(beside)]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    pytest.skip("ruff is not installed: the test extra installs it (make setup, or pip install -e '.[test]')")


def test_ruff_reports_nothing():
    proc = subprocess.run([*ruff_command(), "check", "--no-cache", "--output-format", "concise",
                           "--config", str(ROOT / "pyproject.toml"), *LINTED],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"ruff check {' '.join(LINTED)}:\n{proc.stdout}{proc.stderr}"


def test_pyproject_sets_the_style_and_installs_ruff():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["ruff"]["line-length"] <= 120 and config["tool"]["ruff"]["lint"]["select"]
    assert any(re.match(r"ruff\b", req) for req in config["project"]["optional-dependencies"]["test"])


def test_no_docstring_or_comment_in_the_package_quotes_a_timing():
    found = []
    for path in sorted(PACKAGE.rglob("*")):
        texts = (python_texts(path) if path.suffix == ".py"
                 else cpp_texts(path) if path.suffix in (".cpp", ".h", ".cu", ".cuh") else [])
        found += [f"{path.relative_to(ROOT)}:{line}: {text!r}" for line, text in timings(texts)]
    assert not found, ("docstrings and comments state what the code computes; timings and speed-ups belong in "
                       "`make bench`'s output and in notes:\n" + "\n".join(found))


@pytest.mark.parametrize("text", [
    "(canvas ResNet-like, 1,280 images on an AVX2 CPU: 3.5 s -> 2.7 s, 540k -> 50k page faults)",
    "// vectorise: 13 ms -> 257 ms for a 1024x16x32x32 map",
    "the same weights, and MaxBlurPool-5 trains 1.37x faster",
    "oneDNN's bf16 depthwise convolution on a CPU is 2.5x slower than its float32 one",
    "which took 1.3 s of every notebook's start",
    "# e2cnn's basis expansion trains 1.5x slower in bfloat16",
    "the canvas networks spent 15 % of a training step there",
    "a speed-up of 3 over the loop",
    "each call takes 40 ms",
    "measured at 850 images/s and 12.5 GFLOP/s",
])
def test_timing_pattern_finds_quoted_timings(text):
    assert TIMING.search(text), text


@pytest.mark.parametrize("text", [
    "Max_{2,1}: (N, C, H+1, W+1) -> (N, C, H, W); equal to F.max_pool2d(x, 2, 1)",
    "x[n, :, i_n::s, j_n::s] per image, phase_n = i_n * s + j_n: (N, C, H/s, W/s)",
    "Each item (N, C, s, s) at the centre of a 3 x 3 mosaic of items: (N, C, 3s, 3s)",
    "widened 4x (16-32-64 -> 64-128-256 channels) with two 3x3 convolutions per stage",
    "a 4x4 adaptive pool that keeps coarse position, two linear layers",
    "1 - cos(F_l(roll(x, D)), T_{D/s_l} F_l(x)), T = band-limited shift",
    "returns per-epoch {'epoch', 'loss', 'train_acc', 'seconds'}",
    "BatchNorm2d's running averages: r <- (1 - m) r + m * batch value",
    "y (N, C, ceil(H / s), ceil(W / s)) float32 channels-last",
    "2 ** stages -> S; stride 2 s.t. the 8 neighbours of item i are items i+1..i+8",
    "takes 2 steps of the schedule",
    "chapter 9 the ResNet-18s of zoo.RESNET18_TABLE, conv2s of each block",
])
def test_timing_pattern_spares_formulas(text):
    assert not TIMING.search(text), TIMING.search(text)
