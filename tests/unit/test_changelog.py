"""Changelog fragments are valid, and every commit that changes shipped content carries one.

- ``antsibull-changelog lint`` accepts every fragment in changelogs/fragments/ (sections from
  changelogs/config.yaml, lists of strings).
- Every commit after BASELINE that changes a file under roles/, plugins/, playbooks/, meta/ or
  site.yml adds or changes a file in changelogs/fragments/ in the same commit, unless its message
  contains ``[no changelog]`` (a change no user sees: a comment, a test-only helper). DEVELOPERS.md
  says so for contributors. Needs the git history: a checkout without git, or a shallow one that
  lacks BASELINE, fails (CI always has both).
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# main's HEAD when the check was introduced (issue 20): 49 of 59 code-touching commits before it
# carry no fragment, and history is not rewritten. Commits after it are checked.
BASELINE = "d52ff67243660c03e907287616d52a993e6b9fdd"
WATCHED_DIRS = ("roles/", "plugins/", "playbooks/", "meta/")
WATCHED_FILES = ("site.yml",)
FRAGMENTS = "changelogs/fragments/"
OPT_OUT = "[no changelog]"
# Commits after BASELINE that changed shipped content without a fragment in the same commit and
# cannot be rewritten (main is never rebased): sha -> the fragment (it must exist) that describes
# the change, or OPT_OUT + why no user sees it, for a message that forgot to say OPT_OUT. Only for
# commits made before the check was enforced.
ACCEPTED = {
    # Issue 20: filter documentation (sidecars) and role READMEs, written while this check came.
    "2f345017f3fda5eff448a2ce57049449f5aaf0de": "filter-docs.yml",
    "e0b9bba9ec35683319b82af433ca7564502fcdf0": "filter-docs.yml",
    "0e09650eb72f5efa73e33dfdd67edeebbb87a6a4": "filter-docs.yml",
    "0775220e11dbd268c8ea44282bcdbb5a2a209414": "filter-docs.yml",
    "f0bd491a9e7f3046cd2f8b289f1103e0b7660847": "filter-docs.yml",
    "97fb19418e39912a7c03db73323945d25a6526a7": "filter-docs.yml",
    "6d7979de4c36498369424a49bc1b168a40f30d22": "filter-docs.yml",
    "8e17e2ce3b5a371ca9f7e50b043ce210cb67c4ca": "role-readmes.yml",
    # Issue 20: the execution environment's meta/ee-*.txt.
    "217755b38f414271e7f661122313d3b73e4c398a": "ee-built-here.yml",
    # Fixes the DOCUMENTATION line added by 8cc0ae5 (same change, same fragment).
    "74085ff9727a9b81ea5b65da5ee59e97eec917c5": "rotate-external-state.yml",
    "a7670af02c07e5751b1e6963dfa5de34e16c2d6c": f"{OPT_OUT} line continuations of a message (pep8)",
}


def antsibull():
    """antsibull-changelog next to the interpreter running the tests (the venv's), else on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), "antsibull-changelog")
    return local if os.access(local, os.X_OK) else shutil.which("antsibull-changelog")


def git(*args, cwd=ROOT):
    if not shutil.which("git"):
        pytest.fail("git is not installed: the changelog check reads the commit history (apt-get install git)")
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode:
        pytest.fail(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def watched(path):
    return path.startswith(WATCHED_DIRS) or path in WATCHED_FILES


def fragment_changed(status, path):
    """A fragment added, changed, renamed or copied into changelogs/fragments/ (a deletion is not one)."""
    return path.startswith(FRAGMENTS) and path.endswith((".yml", ".yaml")) and status[0] in "AMRC"


def commit_problem(sha, message, changes):
    """None when the commit is fine, else why not. ``changes``: [(status, path)] as git reports
    them (for a rename or copy, the new path)."""
    if OPT_OUT in message or sha in ACCEPTED:
        return None
    touched = sorted({p for _status, p in changes if watched(p)})
    if not touched or any(fragment_changed(s, p) for s, p in changes):
        return None
    more = f" and {len(touched) - 3} more" if len(touched) > 3 else ""
    return (
        f"{sha[:12]} {message.splitlines()[0][:80]!r} changes {', '.join(touched[:3])}{more} "
        f"but adds no {FRAGMENTS}*.yml (add one, or say {OPT_OUT} in the message when no user sees the change)"
    )


def commits_since(base, cwd=ROOT):
    """[(sha, message, [(status, path)])] of every non-merge commit in base..HEAD, oldest first."""
    if git("rev-parse", "--is-shallow-repository", cwd=cwd).strip() == "true":
        if subprocess.run(["git", "cat-file", "-e", base + "^{commit}"], cwd=cwd, check=False).returncode:
            pytest.fail(f"shallow clone without {base[:12]}: fetch the history (git fetch --unshallow)")
    out = []
    for sha in git("rev-list", "--no-merges", "--reverse", f"{base}..HEAD", cwd=cwd).split():
        message = git("log", "-1", "--format=%B", sha, cwd=cwd)
        changes = []
        for line in git("show", "--no-renames", "--name-status", "--format=", sha, cwd=cwd).splitlines():
            if line.strip():
                status, _tab, path = line.partition("\t")
                changes.append((status, path.split("\t")[-1]))
        out.append((sha, message, changes))
    return out


def test_fragments_lint():
    tool = antsibull()
    assert tool, "antsibull-changelog is not installed (requirements-dev.txt pins it)"
    proc = subprocess.run([tool, "lint"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_lint_rejects_a_bad_fragment(tmp_path):
    """The lint run above would see a broken fragment (same config, a scratch collection)."""
    tool = antsibull()
    assert tool, "antsibull-changelog is not installed (requirements-dev.txt pins it)"
    (tmp_path / "changelogs" / "fragments").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "galaxy.yml"), tmp_path)
    shutil.copy(os.path.join(ROOT, "changelogs", "config.yaml"), tmp_path / "changelogs")
    (tmp_path / "changelogs" / "fragments" / "bad.yml").write_text(
        "---\nminor_change:\n  - a typo in the section\nbugfixes: not a list\n", encoding="utf-8"
    )
    proc = subprocess.run([tool, "lint"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "invalid section: minor_change" in proc.stdout
    assert 'section "bugfixes" must be type list' in proc.stdout


def test_accepted_commits_name_an_existing_fragment():
    missing = {
        sha[:12]: f
        for sha, f in ACCEPTED.items()
        if not f.startswith(OPT_OUT) and not os.path.isfile(os.path.join(ROOT, FRAGMENTS, f))
    }
    assert not missing, f"ACCEPTED names fragments that do not exist: {missing}"
    listed = set(git("rev-list", "--no-merges", f"{BASELINE}..HEAD").split())
    assert set(ACCEPTED) <= listed, f"ACCEPTED names commits not after the baseline: {sorted(set(ACCEPTED) - listed)}"


def test_every_commit_since_baseline_has_a_fragment():
    commits = commits_since(BASELINE)
    problems = [p for p in (commit_problem(*c) for c in commits) if p]
    assert not problems, "commits without a changelog fragment:\n  " + "\n  ".join(problems)


def test_history_check_on_a_scratch_repository(tmp_path):
    """commits_since + commit_problem on real commits: which ones the check refuses."""
    if not shutil.which("git"):
        pytest.fail("git is not installed")

    def commit(files, message):
        for rel, text in files.items():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            if text is None:
                (tmp_path / rel).unlink()
            else:
                (tmp_path / rel).write_text(text, encoding="utf-8")
        git("add", "-A", cwd=tmp_path)
        git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", message, cwd=tmp_path)
        return git("rev-parse", "HEAD", cwd=tmp_path).strip()

    git("init", "-q", cwd=tmp_path)
    base = commit({"README.md": "x\n"}, "base")
    ok = commit({"roles/r/tasks/main.yml": "---\n", FRAGMENTS + "r.yml": "---\n"}, "role and fragment")
    bad_role = commit({"roles/r/tasks/main.yml": "---\n# changed\n"}, "role only")
    docs = commit({"README.md": "y\n", "tests/unit/t.py": "\n"}, "docs and tests")
    opt_out = commit({"site.yml": "---\n"}, "site.yml comment [no changelog]")
    deleted = commit({"meta/runtime.yml": "---\n", FRAGMENTS + "r.yml": None}, "meta and a fragment removed")
    fixed = commit({"plugins/filter/f.py": "\n", FRAGMENTS + "r.yml": "---\n"}, "plugin, fragment again")
    verdicts = {sha: commit_problem(sha, msg, changes) for sha, msg, changes in commits_since(base, cwd=tmp_path)}
    assert list(verdicts) == [ok, bad_role, docs, opt_out, deleted, fixed]
    refused = [sha for sha, problem in verdicts.items() if problem]
    assert refused == [bad_role, deleted]
    assert "roles/r/tasks/main.yml" in verdicts[bad_role] and "meta/runtime.yml" in verdicts[deleted]
