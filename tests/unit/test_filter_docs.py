"""Every filter the collection ships has documentation that ``ansible-doc -t filter`` shows
(sidecar ``plugins/filter/<name>.yml``), and the documentation matches the code: one option per
parameter of the filter function (the piped value is ``_input``), ``positional`` in the
function's order, ``required`` exactly for the parameters without a default, the same defaults,
EXAMPLES that are YAML, a typed RETURN. Every sidecar names a filter that exists.

ansible-doc runs once for every name (``--json``), through the checkout linked as
``.build/collections/ansible_collections/hardened/stack`` (conftest).
"""

import glob
import importlib
import inspect
import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILTER_DIR = os.path.join(ROOT, "plugins", "filter")
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
BIN = os.path.dirname(sys.executable)


def _filters():
    """name -> (function, source file) over every FilterModule().filters() in plugins/filter."""
    out = {}
    for path in sorted(glob.glob(os.path.join(FILTER_DIR, "*.py"))):
        module = importlib.import_module(
            "ansible_collections.hardened.stack.plugins.filter." + os.path.basename(path)[:-3]
        )
        for name, func in module.FilterModule().filters().items():
            assert name not in out, "filter %s is defined in %s and %s" % (name, out.get(name, (None, ""))[1], path)
            out[name] = (func, os.path.basename(path))
    return out


FILTERS = _filters()


def _env():
    return dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        PYTHONWARNINGS="ignore",
        ANSIBLE_NOCOLOR="1",
    )


def ansible_doc(*args):
    """``ansible-doc -t filter ARGS`` from the checkout: its stdout (rc 0 asserted)."""
    proc = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", "filter", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def docs():
    """``ansible-doc -t filter --json`` for every filter, in one run."""
    names = ["hardened.stack." + n for n in sorted(FILTERS)]
    return json.loads(ansible_doc("--json", *names))


def _parameters(func):
    """The parameters a filter takes. A wrapper that forwards ``*args, **kwargs`` (the encoders)
    takes those of the one function it closes over."""
    params = list(inspect.signature(func).parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        wrapped = [v for v in inspect.getclosurevars(func).nonlocals.values() if callable(v)]
        assert len(wrapped) == 1, "%s forwards *args/**kwargs but wraps %d functions" % (func.__name__, len(wrapped))
        return _parameters(wrapped[0])
    return params


def test_every_filter_is_found():
    # the sidecars below are checked against this list: an import failure must not hide filters
    assert len(FILTERS) >= 50, sorted(FILTERS)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_filter_documented(docs, name):
    func, source = FILTERS[name]
    entry = docs.get("hardened.stack." + name)
    assert entry, "ansible-doc has no documentation for hardened.stack.%s (%s): add plugins/filter/%s.yml" % (
        name,
        source,
        name,
    )
    doc = entry["doc"]
    assert doc.get("name") == name
    assert doc.get("short_description", "").strip(), name
    assert doc.get("description"), name
    assert doc.get("author"), name

    params = _parameters(func)
    options = doc.get("options") or {}
    wanted = ["_input"] + [p.name for p in params[1:]]
    assert sorted(options) == sorted(wanted), "%s: documented options %s, function parameters %s" % (
        name,
        sorted(options),
        wanted,
    )
    positional = (
        [p.strip() for p in (doc.get("positional") or "").split(",") if p.strip()]
        if isinstance(doc.get("positional"), str)
        else list(doc.get("positional") or [])
    )
    assert positional == wanted, "%s: positional %s, function order %s" % (name, positional, wanted)

    for key, param in zip(wanted, params, strict=True):
        opt = options[key]
        assert opt.get("description"), "%s: option %s has no description" % (name, key)
        assert opt.get("type"), "%s: option %s has no type" % (name, key)
        if param.default is inspect.Parameter.empty:
            assert opt.get("required") is True, "%s: %s has no default in the code: document required: true" % (
                name,
                key,
            )
        else:
            assert not opt.get("required"), "%s: %s has a default (%r), it is not required" % (name, key, param.default)
            if param.default is None:
                assert "default" not in opt or opt["default"] is None, "%s: %s defaults to None in the code" % (
                    name,
                    key,
                )
            else:
                assert opt.get("default") == param.default, "%s: %s documents default %r, the code has %r" % (
                    name,
                    key,
                    opt.get("default"),
                    param.default,
                )

    examples = entry.get("examples") or ""
    assert "hardened.stack." + name in examples, "%s: no example calls the filter" % name
    yaml.safe_load(examples)  # an example that is not YAML raises here

    returned = entry.get("return") or {}
    assert "_value" in returned and returned["_value"].get("type") and returned["_value"].get("description"), name


def test_every_sidecar_names_a_filter():
    for path in sorted(glob.glob(os.path.join(FILTER_DIR, "*.yml"))):
        stem = os.path.basename(path)[:-4]
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        assert stem in FILTERS, "%s documents no filter the collection ships" % os.path.relpath(path, ROOT)
        assert data["DOCUMENTATION"]["name"] == stem, path
        assert set(data) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, (path, sorted(data))


def test_listing_has_no_undocumented_filter():
    listed = {}
    for line in ansible_doc("-l", "hardened.stack").splitlines():
        if line.startswith("hardened.stack."):
            fqcn, text = (line.split(None, 1) + [""])[:2]
            listed[fqcn[len("hardened.stack.") :]] = text.strip()
    assert sorted(listed) == sorted(FILTERS)
    assert [n for n, text in listed.items() if text == "UNDOCUMENTED"] == []
