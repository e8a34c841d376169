"""The execution environment's definition and offline artifacts (lab/ee.py, execution-environment.yml).

The image build itself runs in `make test`'s ee stage; here: the pins agree with what they pin,
the artifacts the EE installs are exactly the tarball and collections/requirements.yml, and an
artifact packed from the venv's installed collection is one ansible-galaxy installs offline
(and refuses when a file no longer matches the collection's FILES.json)."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from lab import ee, images

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GALAXY = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")


def pins(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        return dict(line.strip().split("==", 1) for line in fh if "==" in line and not line.startswith("#"))


def test_base_image_is_the_lab_image_at_its_revision():
    assert ee.definition()["images"]["base_image"]["name"] == (
        f"hardened-stack/debian12-systemd:{images.revision()}")


def test_ansible_core_and_runner_pinned_like_the_controller():
    deps = ee.definition()["dependencies"]
    controller = pins("requirements.txt")
    assert deps["ansible_core"]["package_pip"] == f"ansible-core=={controller['ansible-core']}"
    assert deps["ansible_runner"]["package_pip"].startswith("ansible-runner==")


def test_ee_installs_the_tarball_and_every_required_collection():
    wanted = {"collections/hardened-stack.tar.gz"} | {
        f"collections/{name.replace('.', '-')}.tar.gz" for name, _spec in ee.requirements()}
    assert set(ee.artifact_names()) == wanted
    assert all(c.get("type") == "file" for c in ee.definition()["dependencies"]["galaxy"]["collections"])
    assert "--offline" in ee.definition()["build_arg_defaults"]["ANSIBLE_GALAXY_CLI_COLLECTION_OPTS"]


def test_the_dependencies_own_lists_are_left_out():
    excluded = set(ee.definition()["dependencies"]["exclude"]["all_from_collections"])
    assert excluded == {name for name, _spec in ee.requirements()}


def test_venv_collections_meet_the_requirements():
    for name, spec in ee.requirements():
        with open(os.path.join(ee.installed_collection(name), "MANIFEST.json"), encoding="utf-8") as fh:
            version = json.load(fh)["collection_info"]["version"]
        assert ee.meets(version, spec), (name, version, spec)
    assert not ee.meets("3.5.0", ">=3.6.0")


@pytest.fixture(name="posix_copy")
def fixture_posix_copy(tmp_path):
    src = tmp_path / "posix"
    shutil.copytree(ee.installed_collection("ansible.posix"), src,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return src


def galaxy_install(tarball, dest):
    cfg = dest / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(cfg)
    # --force: the venv's ansible package already has these collections (not on this path)
    return subprocess.run([GALAXY, "collection", "install", "--offline", "--force", "-p", str(dest / "coll"),
                           str(tarball)], env=env, capture_output=True, text=True, check=False)


def test_packed_artifact_installs_offline_and_is_reproducible(posix_copy, tmp_path):
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    version = ee.pack_installed(str(posix_copy), str(first))
    ee.pack_installed(str(posix_copy), str(second))
    assert first.read_bytes() == second.read_bytes()
    res = galaxy_install(first, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    installed = tmp_path / "coll" / "ansible_collections" / "ansible" / "posix"
    with open(installed / "MANIFEST.json", encoding="utf-8") as fh:
        assert json.load(fh)["collection_info"]["version"] == version
    assert (installed / "plugins" / "modules" / "sysctl.py").read_bytes() == (
        posix_copy / "plugins" / "modules" / "sysctl.py").read_bytes()


def test_a_changed_file_is_refused(posix_copy, tmp_path):
    module = posix_copy / "plugins" / "modules" / "sysctl.py"
    module.write_text(module.read_text() + "\n# changed\n")
    with pytest.raises(ee.EEError, match="sysctl.py"):
        ee.pack_installed(str(posix_copy), str(tmp_path / "c.tar.gz"))


def test_collection_tarball_bytes_follow_its_content(tmp_path):
    """Two builds of the same collection (ansible-galaxy stamps each with its time) give the same
    bytes: Docker's cache keeps the image's layers when the collection did not change."""
    built = []
    for name in ("first", "second"):
        out = tmp_path / name
        res = subprocess.run([GALAXY, "collection", "build", "--output-path", str(out), ROOT],
                             cwd=ROOT, capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        built.append(next(out.glob("hardened-stack-*.tar.gz")))
        time.sleep(1.1)  # MANIFEST.json's and FILES.json's mtime: whole seconds
    assert built[0].read_bytes() != built[1].read_bytes()
    for tarball in built:
        ee.same_bytes_for_same_content(str(tarball))
    assert built[0].read_bytes() == built[1].read_bytes()
    res = galaxy_install(built[0], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_runner_event_markers_are_stripped():
    line = "\x1b[Ke30=\x1b[4D\x1b[K\x1b[KeyJ1dWlkIjogIjJhYTk2In0=\x1b[28D\x1b[Kok: [app-d12]\n"
    assert ee.RUNNER_EVENT.sub("", line) == "ok: [app-d12]\n"
