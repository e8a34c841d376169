"""The AWX execution environment, built and run on this machine: ``python -m lab.ee COMMAND``.

build              stage .build/ee (execution-environment.yml, the collection's tarball, its
                   dependencies as offline artifacts, this machine's trust anchors) and
                   `ansible-builder build` the image hardened-stack-ee:<galaxy.yml version>
                   (`make ee`; the collection's meta/ee-*.txt come in with its tarball)
syntax-check       `ansible-navigator run hardened.stack.site --syntax-check` in the image, from
                   a directory holding only a copy of the lab inventory
scenario NAME      the preflight and the scenario's converge play in check mode (0 changed),
  [--limit HOSTS]  from the image, against the running hosts of Molecule scenario NAME
lab -i INV         `make lab-ee`: from a fresh directory holding only the tarball and a copy of
  [--limit --tags] the inventory, converge the lab through the image, then rerun: 0 changed

No registry and no Galaxy server here, so:
- the base image is the lab's Debian 12 image (lab/images.py), tagged with the revision
  lab/images.py computes for it; execution-environment.yml pins that tag;
- the dependency collections (collections/requirements.yml) are packed from the copies the
  controller venv holds (the pinned ``ansible`` package installs them with their MANIFEST.json
  and FILES.json), and installed with ``ansible-galaxy collection install --offline`` inside the
  build. The ``ansible`` package leaves out the collections' tests and CI files, so an artifact
  holds the files that are there: each must have the checksum the collection's own FILES.json
  gives it (nothing changed), FILES.json lists exactly those and MANIFEST.json the new
  FILES.json's checksum (ansible-galaxy verifies every file against it when it installs).
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import yaml

from . import engine, images, leaks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
EE_FILE = os.path.join(ROOT, "execution-environment.yml")
REQUIREMENTS = os.path.join(ROOT, "collections", "requirements.yml")
STAGE = os.path.join(ROOT, ".build", "ee")
BASE_IMAGE = "debian12"
# What ansible.cfg and .config/molecule/config.yml give the runs from the checkout (forks,
# pipelining...): a project directory of an EE run has no ansible.cfg; AWX's job template sets
# these the same way, as the job's environment.
RUN_SETTINGS = {"ANSIBLE_PIPELINING": "true", "ANSIBLE_FORKS": "12", "ANSIBLE_HOST_KEY_CHECKING": "false",
                "ANSIBLE_INTERPRETER_PYTHON": "auto_silent", "ANSIBLE_TIMEOUT": "30"}
# ansible-runner wraps each event of its stdout in an escape sequence carrying the event's id
# (base64 between ESC[K and ESC[<n>D ESC[K), which AWX reads; not for a terminal or a log.
RUNNER_EVENT = re.compile(r"\x1b\[K[A-Za-z0-9+/=]*\x1b\[\d+D\x1b\[K")


class EEError(RuntimeError):
    """A step of the execution environment's build or run failed."""


def galaxy_version() -> str:
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as fh:
        return str(yaml.safe_load(fh)["version"])


def image_tag() -> str:
    return f"hardened-stack-ee:{galaxy_version()}"


def definition() -> dict:
    with open(EE_FILE, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def pinned_base() -> str:
    """The base image execution-environment.yml pins: the lab image's tag at its revision."""
    return f"{images.IMAGES[BASE_IMAGE]['tag'].rsplit(':', 1)[0]}:{images.revision()}"


def ensure_base() -> str:
    """Build the lab's Debian 12 image if needed (cached) and tag it with its revision."""
    name = definition()["images"]["base_image"]["name"]
    want = pinned_base()
    if name != want:
        raise EEError(f"execution-environment.yml pins {name}, but lab/images.py's {BASE_IMAGE} image "
                      f"is now {want}: update images.base_image.name")
    engine.ensure_engine()
    tag = images.build(BASE_IMAGE)
    if not images.image_exists(tag, images.revision()):
        raise EEError(f"{tag} is not at revision {images.revision()}")
    engine.run(["docker", "tag", tag, want], quiet=True)
    return want


def requirements(path: str = REQUIREMENTS) -> list[tuple[str, str]]:
    """(name, version range) of every collection of collections/requirements.yml."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    out = []
    for item in data.get("collections", []):
        entry = {"name": item} if isinstance(item, str) else item
        out.append((entry["name"], str(entry.get("version", "*"))))
    return out


def installed_collection(name: str) -> str:
    """The directory of collection ``name`` in the controller venv (the ``ansible`` package)."""
    namespace, short = name.split(".")
    import ansible  # noqa: PLC0415

    site = os.path.dirname(os.path.dirname(ansible.__file__))
    path = os.path.join(site, "ansible_collections", namespace, short)
    if not os.path.isfile(os.path.join(path, "MANIFEST.json")):
        raise EEError(f"collection {name} is not in the controller venv ({site})")
    return path


def meets(version: str, spec: str) -> bool:
    """ansible-galaxy's own reading of a requirement's version range."""
    from ansible.galaxy.dependency_resolution.versioning import meets_requirements  # noqa: PLC0415

    return meets_requirements(version, spec)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def pack_installed(src: str, out: str) -> str:
    """A collection artifact (tarball) of the installed collection in ``src``; returns its version.

    Files are those of the collection's FILES.json that are present, each with the checksum
    FILES.json gives it (EEError otherwise). FILES.json and MANIFEST.json are rewritten for
    that set of files; nothing else changes."""
    with open(os.path.join(src, "MANIFEST.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    with open(os.path.join(src, "FILES.json"), encoding="utf-8") as fh:
        files = json.load(fh)
    kept, changed = [], []
    for entry in files["files"]:
        path = os.path.join(src, entry["name"])
        if entry["ftype"] == "dir":
            if os.path.isdir(path):
                kept.append(entry)
        elif os.path.isfile(path):
            if _sha256(path) != entry["chksum_sha256"]:
                changed.append(entry["name"])
            kept.append(entry)
    if changed:
        raise EEError(f"{src}: files differ from the collection's FILES.json: {changed[:5]}")
    files_json = json.dumps(dict(files, files=kept), indent=4).encode()
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()
    manifest_json = json.dumps(manifest, indent=4).encode()

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))

    def owner_free(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with open(out, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        add_bytes(tar, "MANIFEST.json", manifest_json)
        add_bytes(tar, "FILES.json", files_json)
        for entry in kept:
            tar.add(os.path.join(src, entry["name"]), arcname=entry["name"], recursive=False, filter=owner_free)
    return manifest["collection_info"]["version"]


def same_bytes_for_same_content(tarball: str) -> None:
    """Rewrite ``tarball`` without timestamps (ansible-galaxy stamps MANIFEST.json and FILES.json
    with the build's time, gzip its header): an unchanged collection gives the same bytes, so
    Docker's build cache keeps every layer after it."""
    with tarfile.open(tarball) as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src.getmembers()]
    with open(tarball, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as dest:
        for member, data in members:
            member.mtime = 0
            dest.addfile(member, io.BytesIO(data) if data is not None else None)


def artifact_names() -> list[str]:
    """The artifacts execution-environment.yml installs (collections/<namespace>-<name>.tar.gz)."""
    return [c["name"] for c in definition()["dependencies"]["galaxy"]["collections"]]


def stage(requirements_file: str = REQUIREMENTS) -> str:
    """Fill .build/ee: a copy of execution-environment.yml, this machine's trust anchors, the
    collection's tarball and one artifact per collection of collections/requirements.yml;
    return its path."""
    shutil.rmtree(STAGE, ignore_errors=True)
    coll = os.path.join(STAGE, "collections")
    os.makedirs(coll)
    shutil.copy2(EE_FILE, STAGE)
    # This machine's own trust anchors, for the build's downloads (execution-environment.yml).
    anchors = os.path.join(STAGE, "ca-certificates")
    os.makedirs(anchors)
    for crt in glob.glob("/usr/local/share/ca-certificates/**/*.crt", recursive=True):
        shutil.copy2(crt, anchors)
    start = time.time()
    res = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force",
                          "--output-path", coll, ROOT], cwd=ROOT, capture_output=True, text=True, check=False)
    if res.returncode:
        raise EEError(f"ansible-galaxy collection build failed: {res.stdout}{res.stderr}")
    built = glob.glob(os.path.join(coll, "hardened-stack-*.tar.gz"))
    os.replace(built[0], os.path.join(coll, "hardened-stack.tar.gz"))
    same_bytes_for_same_content(os.path.join(coll, "hardened-stack.tar.gz"))
    print(f"ee: collection tarball {os.path.basename(built[0])} ({time.time() - start:.1f} s)", flush=True)
    wanted = {"collections/hardened-stack.tar.gz"}
    for name, spec in requirements(requirements_file):
        src = installed_collection(name)
        dest = os.path.join(coll, f"{name.replace('.', '-')}.tar.gz")
        version = pack_installed(src, dest)
        if not meets(version, spec):
            raise EEError(f"{name} {version} in the controller venv does not meet "
                          f"collections/requirements.yml's {spec}")
        print(f"ee: {name} {version} ({spec}) packed from {src}", flush=True)
        wanted.add(f"collections/{os.path.basename(dest)}")
    listed = set(artifact_names())
    if listed != wanted:
        raise EEError(f"execution-environment.yml installs {sorted(listed)}, collections/requirements.yml "
                      f"and the tarball make {sorted(wanted)}")
    return STAGE


def build(requirements_file: str = REQUIREMENTS) -> str:
    """`make ee`: the base image, the staged build directory, then ansible-builder; the tag."""
    start = time.time()
    base = ensure_base()
    print(f"ee: base image {base} ({time.time() - start:.1f} s)", flush=True)
    stage(requirements_file)
    tag = image_tag()
    start = time.time()
    cmd = [os.path.join(BIN, "ansible-builder"), "build", "--container-runtime", "docker",
           "-f", "execution-environment.yml", "--context", "context", "-t", tag, "-v", "2"]
    print("+ " + " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=STAGE, check=False).returncode:
        raise EEError(f"ansible-builder build failed (build context: {os.path.join(STAGE, 'context')})")
    print(f"ee: image {tag} built ({time.time() - start:.1f} s)", flush=True)
    return tag


def navigator(workdir: str, args: list[str], *, mounts: tuple[str, ...] = (), env: dict | None = None,
              image: str | None = None) -> tuple[int, str]:
    """``ansible-navigator run ARGS`` in EE mode from ``workdir`` (which navigator mounts as the
    project directory), as AWX runs a job: the image's content only, its collections, its
    Python. ``--network host``: the lab's and the scenarios' networks and the names in this
    machine's /etc/hosts are reachable from the container. ``mounts`` are ``src:dest:options``,
    ``env`` is set in the container. Prints the output as it comes; returns (rc, output)."""
    cmd = [os.path.join(BIN, "ansible-navigator"), "run", *args,
           "--ee", "true", "--ce", "docker", "--eei", image or image_tag(), "--pp", "never",
           "-m", "stdout", "--pae", "false", "--lf", os.path.join(workdir, "ansible-navigator.log"),
           "--co=--network=host"]
    for mount in mounts:
        cmd.append(f"--eev={mount}")
    for key, value in sorted((env or {}).items()):
        cmd.append(f"--senv={key}={value}")
    # Nothing of this checkout's settings reaches the run: no ansible.cfg, no collections path.
    host_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    host_env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    print("+ " + " ".join(cmd), flush=True)
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=workdir, env=host_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for raw in proc.stdout:
        line = RUNNER_EVENT.sub("", raw)  # ansible-runner's event markers (what AWX parses)
        lines.append(line)
        print(line, end="", flush=True)
    rc = proc.wait()
    print(f"ee: ansible-navigator run {args[0]}: rc={rc} ({time.time() - start:.1f} s)", flush=True)
    return rc, "".join(lines)


def require_image(tag: str | None = None) -> str:
    """The ID of image ``tag`` (default: this version's): every run of one command uses that
    image, even when `make ee` retags the name meanwhile."""
    tag = tag or image_tag()
    res = engine.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag], check=False, capture=True, quiet=True)
    if res.returncode:
        raise EEError(f"no image {tag}: make ee")
    print(f"ee: image {tag} is {res.stdout.strip()}", flush=True)
    return res.stdout.strip()


def syntax_check(inventory: str = "inventories/lab", image: str | None = None) -> int:
    """`hardened.stack.site --syntax-check` in the image from a directory holding only a copy of
    ``inventory``: the playbook, its roles and plugins and their dependencies come from the
    image alone."""
    image = require_image(image)
    work = tempfile.mkdtemp(prefix="hs-ee-syntax-")
    try:
        shutil.copytree(os.path.join(ROOT, inventory), os.path.join(work, "inventory"))
        rc, out = navigator(work, ["hardened.stack.site", "-i", "inventory", "--syntax-check"], image=image)
        if rc == 0 and "/usr/share/ansible/collections/ansible_collections/hardened/stack/" not in out:
            print("ee: the syntax check did not load hardened.stack from the image")
            return 1
        return rc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def molecule_paths(scenario: str) -> tuple[str, str, list[dict]]:
    """(ephemeral directory, inventory directory, instance configs) of a created scenario."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if not ephemeral:  # where Molecule keeps a scenario of this project (molecule/scenario.py)
        from molecule.text import checksum  # noqa: PLC0415

        ephemeral = os.path.expanduser(f"~/.ansible/tmp/molecule.{checksum(os.path.basename(ROOT), 4)}.{scenario}")
    with open(os.path.join(ephemeral, "instance_config.yml"), encoding="utf-8") as fh:
        instances = yaml.safe_load(fh) or []
    if not instances:
        raise EEError(f"molecule scenario {scenario} has no instances: create and converge it first")
    return ephemeral, os.path.join(ephemeral, "inventory"), instances


def scenario(name: str, image: str | None = None, limit: str = "all") -> tuple[int, str]:
    """The preflight, then the scenario's converge play in check mode, from the image against
    the hosts of a converged Molecule scenario (``limit``: the hosts whose tier the scenario
    has whole; the preflight checks every role a host would get): both exit 0, the check-mode
    run changes nothing. The project directory holds a copy of the scenario's inventory and its converge
    play; its ephemeral directory (the SSH key, the generated secrets the inventory names) is
    mounted read-only at the same path. Returns (rc, check-mode output)."""
    image = require_image(image)
    ephemeral, inventory, instances = molecule_paths(name)
    work = tempfile.mkdtemp(prefix=f"hs-ee-{name}-")
    try:
        shutil.copytree(inventory, os.path.join(work, "inventory"), symlinks=False)
        shutil.copy2(os.path.join(ROOT, "molecule", name, "converge.yml"), work)
        mounts = [f"{ephemeral}:{ephemeral}:ro"]
        keys = {os.path.dirname(i["identity_file"]) for i in instances if i.get("identity_file")}
        mounts += [f"{k}:{k}:ro" for k in sorted(keys) if not k.startswith(ephemeral + os.sep)]
        # The inventory reads molecule.yml (hardened_stack_address) through MOLECULE_FILE.
        env = dict(RUN_SETTINGS, MOLECULE_FILE=os.path.join(ephemeral, "molecule.yml"),
                   MOLECULE_EPHEMERAL_DIRECTORY=ephemeral)
        # One run (one container, one start of Ansible): the preflight, then the converge play.
        with open(os.path.join(work, "ee-check.yml"), "w", encoding="utf-8") as fh:
            fh.write("---\n- name: Preflight from the execution environment\n"
                     "  ansible.builtin.import_playbook: hardened.stack.preflight\n"
                     f"- name: The {name} scenario's converge play\n"
                     "  ansible.builtin.import_playbook: converge.yml\n")
        return navigator(work, ["ee-check.yml", "-i", "inventory", "--limit", limit, "--check"],
                         mounts=tuple(mounts), env=env, image=image)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# The lab's controller-side state (inventories/lab: lab_cache_dir, from HSLAB_CACHE): its SSH
# key, its CA and the generated secrets. Mounted read-only into the EE: a job cannot mint a
# second CA or new passwords, and a missing piece stops it instead of being made and lost.
LAB_STATE = ("ssh", "pki", "secrets")
LAB_STATE_IN_EE = "/hslab-state"


def lab(inventory: str = "inventories/lab", image: str | None = None, extra: tuple[str, ...] = ()) -> int:
    """`make lab-ee`: from a fresh directory holding only the built tarball and a copy of the
    inventory, converge the lab with hardened.stack.site through the image, then run it again:
    both exit 0, the second changes nothing. Both recaps are printed. ``extra``: more
    ansible-playbook arguments for both runs (--limit, --tags)."""
    image = require_image(image)
    tarball = os.path.join(STAGE, "collections", "hardened-stack.tar.gz")
    if not os.path.isfile(tarball):
        raise EEError(f"no {tarball}: make ee")
    cache = os.environ.get("HSLAB_CACHE") or os.path.expanduser("~/.cache/hardened-stack")
    missing = [d for d in LAB_STATE if not os.path.isdir(os.path.join(cache, d))]
    if missing:
        raise EEError(f"the lab's controller state is missing in {cache}: {', '.join(missing)} "
                      "(made by `make lab`; the EE mounts it read-only and never makes it)")
    work = tempfile.mkdtemp(prefix="hs-lab-ee-")
    try:
        shutil.copy2(tarball, os.path.join(work, f"hardened-stack-{galaxy_version()}.tar.gz"))
        shutil.copytree(os.path.join(ROOT, inventory), os.path.join(work, "inventory"))
        print(f"ee: project directory {work}: {sorted(os.listdir(work))}", flush=True)
        mounts = tuple(f"{os.path.join(cache, d)}:{LAB_STATE_IN_EE}/{d}:ro" for d in LAB_STATE)
        env = dict(RUN_SETTINGS, HSLAB_CACHE=LAB_STATE_IN_EE)
        args = ["hardened.stack.site", "-i", "inventory", "-e", "pki_ca_create=false", *extra]
        recaps, bad = [], 0
        for run in ("converge", "rerun"):
            rc, out = navigator(work, args, mounts=mounts, env=env, image=image)
            changed = leaks.recap_changed(out)
            recaps.append((run, rc, changed, out.rsplit("PLAY RECAP", 1)[-1].strip()))
            bad += rc != 0 or (run == "rerun" and changed != 0)
            if rc:
                break
        for run, rc, changed, text in recaps:
            print(f"\n===== {run} through {image}: rc={rc}, changed={changed}\nPLAY RECAP {text}")
        print(f"ee: lab: {'passed' if not bad else 'FAILED'} (the rerun must exit 0 with 0 changed)")
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.ee", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sb = sub.add_parser("build")
    sb.add_argument("--requirements", default=REQUIREMENTS)
    sc = sub.add_parser("syntax-check")
    sc.add_argument("-i", "--inventory", default="inventories/lab")
    ss = sub.add_parser("scenario")
    ss.add_argument("name")
    ss.add_argument("--limit", default="all")
    sl = sub.add_parser("lab")
    sl.add_argument("-i", "--inventory", default="inventories/lab")
    sl.add_argument("--limit")
    sl.add_argument("--tags")
    args = p.parse_args(argv)
    try:
        if args.cmd == "build":
            build(args.requirements)
        elif args.cmd == "syntax-check":
            return syntax_check(args.inventory)
        elif args.cmd == "scenario":
            rc, out = scenario(args.name, limit=args.limit)
            changed = leaks.recap_changed(out)
            print(f"ee: scenario {args.name}: check mode from the image: rc={rc}, changed={changed}")
            return 1 if rc or changed else 0
        elif args.cmd == "lab":
            extra = [f"--{k}={v}" for k, v in (("limit", args.limit), ("tags", args.tags)) if v]
            return lab(args.inventory, extra=tuple(extra))
    except (EEError, engine.LabError) as exc:
        print(f"ee: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
