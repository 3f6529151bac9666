"""Every runtime requirement installs from a wheel on the image's platforms.

No image can be built here (no Docker daemon, no access to the image registry), and the image has no
compiler: a requirement, or one of its dependencies, without a wheel for Home Assistant's Alpine (musl)
Python on aarch64 or amd64 would fail a user's install. So pip resolves requirements.txt for each
architecture of config.yaml as the image's pip would (``--only-binary=:all:``, the platform's musllinux tag,
the base image's Python) and downloads the wheels from PyPI. The image's pip also looks at Home Assistant's
own musllinux wheel index; this test does not, so a requirement it passes needs nothing but PyPI.

Needs the network to PyPI. The downloads are kept under the virtualenv (``.cache/batmon-wheels``, or
``BATMON_WHEEL_CACHE``), so a rerun only asks the index again (a few seconds per platform).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_addon_package import ARCHES, ROOT, base_image_versions

#: musllinux_1_2: Alpine has had musl 1.2 since 3.13; the base images are 3.22 to 3.24.
MUSLLINUX = "musllinux_1_2"


def wheel_cache() -> Path:
    configured = os.environ.get("BATMON_WHEEL_CACHE")
    return Path(configured) if configured else Path(sys.prefix) / ".cache" / "batmon-wheels"


def pip_environment() -> dict[str, str]:
    """The environment for pip: this machine's pip configuration (extra indexes, local wheel directories,
    constraints) left out, so only PyPI answers; certificates, timeouts and proxies kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


#: requirements PyPI has as a source archive only, which the Dockerfile builds (``--no-binary``): each must be
#: pure Python, so its wheel builds without a compiler and runs on any platform
SOURCE_ONLY = ("pyric",)


def pure_wheels(dest: Path) -> None:
    """Build the wheels of :data:`SOURCE_ONLY` (at requirements.txt's pins) into ``dest``, as the image's pip
    would; fails unless each is pure Python (tagged ``none-any``)."""
    pins = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.split("==")[0].strip().lower() in SOURCE_ONLY]
    assert len(pins) == len(SOURCE_ONLY), pins
    args = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-input", "--no-deps",
            "--index-url", "https://pypi.org/simple", "--no-binary=:all:", "--wheel-dir", str(dest), *pins]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=pip_environment(), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in SOURCE_ONLY:
        built = [w.name for w in dest.glob("*.whl") if w.name.lower().startswith(f"{name}-")]
        assert built, (name, list(dest.iterdir()))
        assert all(w[:-4].endswith("-none-any") for w in built), f"{built}: not pure Python (needs a compiler)"


def unavailable(output: str) -> list[str]:
    """The requirements pip names as having no distribution it may use."""
    found = re.findall(r"No matching distribution found for ([^\s;]+)", output)
    found += re.findall(r"Could not find a version that satisfies the requirement ([^\s;]+)", output)
    return sorted(set(found))


def test_platform_tags_follow_the_manifest() -> None:
    manifest = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert {ARCHES[a] for a in manifest["arch"]} == {"aarch64", "x86_64"}
    assert base_image_versions()[1] >= (3, 13), f"{MUSLLINUX} needs musl 1.2 (Alpine 3.13 and later)"


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_every_runtime_requirement_has_a_wheel(arch: str) -> None:
    manifest = yaml.safe_load((ROOT / "config.yaml").read_text())
    if arch not in manifest["arch"]:
        pytest.skip(f"{arch} is not in config.yaml's arch")
    (major, minor), _alpine = base_image_versions()
    platform = f"{MUSLLINUX}_{ARCHES[arch]}"
    dest = wheel_cache() / f"cp{major}{minor}-{platform}"
    dest.mkdir(parents=True, exist_ok=True)
    local = wheel_cache() / "source-only"
    local.mkdir(parents=True, exist_ok=True)
    pure_wheels(local)
    args = [sys.executable, "-m", "pip", "download", "--quiet", "--no-input",
            "--index-url", "https://pypi.org/simple", "--find-links", str(local),
            "--only-binary=:all:", "--platform", platform,
            "--python-version", f"{major}.{minor}", "--implementation", "cp",
            "--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none",
            "--dest", str(dest), "-r", str(ROOT / "requirements.txt")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=pip_environment(), check=False)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        missing = unavailable(output)
        what = ", ".join(missing) if missing else "see pip's output"
        tail = "\n".join(line for line in output.splitlines() if "is ignored" not in line)[-3000:]
        pytest.fail(f"no wheel for {platform}, CPython {major}.{minor}: {what} (it would need a compiler in "
                    f"the image)\n{tail}")
    wheels = sorted(p.name for p in dest.glob("*.whl"))
    pinned = [line.split("==")[0].strip().lower().replace("-", "_") for line in
              (ROOT / "requirements.txt").read_text().splitlines() if "==" in line.split("#")[0]]
    for name in pinned:
        assert any(w.lower().startswith(f"{name}-") for w in wheels), (name, wheels)
    for w in wheels:  # nothing for another platform slipped in (musllinux_1_1 wheels run on musl 1.2 too)
        platform_tags = w[:-4].split("-")[-1].split(".")
        assert platform_tags == ["any"] or any(
            t.startswith("musllinux_") and t.endswith(f"_{ARCHES[arch]}") for t in platform_tags), w


def test_the_failure_names_the_package() -> None:
    output = ("ERROR: Could not find a version that satisfies the requirement crcmod==1.7 (from versions: none)\n"
              "ERROR: No matching distribution found for crcmod==1.7\n")
    assert unavailable(output) == ["crcmod==1.7"]
