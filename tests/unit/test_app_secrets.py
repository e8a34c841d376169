"""roles/app/tasks/secrets.yml: what the rotation's accept phase learns from the deployed
environment file, and which previous passwords it writes.

The two set_fact tasks are evaluated with Ansible's own templating (the expressions as the
task file holds them) against app.env.j2 rendered with the corpus of awkward secrets; what
they decode must be what systemd reads (the port of systemd's env-file parser in
plugins/filter/test_encode_corpus.py).
"""

import base64
import os
import sys

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins", "filter"))
from test_encode_corpus import CORPUS, LINE_BREAKS, ROOT, parse_env_file, render  # noqa: E402

TASKS = os.path.join(ROOT, "roles", "app", "tasks", "secrets.yml")
APP_VARS = {
    "_app_address": "10.0.0.5", "app_port": 8080,
    "app_connection": {"pg_write_hosts": "10.0.0.1", "pg_write_port": 5000, "sentinels": ["10.0.0.1:26379"]},
    "app_db_name": "app", "app_db_user": "app", "app_db_sslmode": "verify-full", "app_redis_master_name": "main",
    "app_redis_user": "app", "app_sentinel_user": "sentinel", "app_environment": {}, "app_secret_environment": {},
}


def task(name):
    with open(TASKS, encoding="utf-8") as fh:
        for item in yaml.safe_load(fh):
            if item["name"] == name:
                return item
    raise AssertionError(f"no task {name!r} in {TASKS}")


def trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value


def set_fact(name, variables):
    """The facts the named set_fact task sets, templated by Ansible with its task vars."""
    item = task(name)
    templar = Templar(loader=DataLoader(), variables={**variables, **trusted(item.get("vars") or {})})
    return {k: templar.template(trusted(v)) for k, v in item["ansible.builtin.set_fact"].items()}


def decode(text):
    content = base64.b64encode(text.encode("utf-8")).decode()
    return set_fact("Decode the deployed environment file (accept)",
                    {"_app_env_deployed": {"content": content}})["_app_deployed_env"]


def rendered(pg, redis, sentinel, previous=None):
    return render("app", "app.env.j2", _app_passwords={"db": pg, "redis": redis, "sentinel": sentinel},
                  _app_secrets_previous=previous or {}, **APP_VARS)


@pytest.mark.parametrize("value", CORPUS + LINE_BREAKS)
def test_decoded_as_systemd_reads_it(value):
    text = rendered(value, value + "r", "s" + value, {"pg": "p" + value, "redis": value + "q", "sentinel": ""})
    systemd = parse_env_file(text)
    ours = decode(text)
    assert ours == systemd
    assert ours["APP_PG_PASSWORD"] == value and ours["APP_PG_PASSWORD_PREVIOUS"] == "p" + value
    assert ours["APP_REDIS_PASSWORD_PREVIOUS"] == value + "q"
    assert "APP_SENTINEL_PASSWORD_PREVIOUS" not in ours


def test_unquoted_lines_of_an_older_file_are_read_as_they_stand():
    want = {"APP_PG_PASSWORD": "Abc123", "APP_PG_USER": "app"}
    assert decode("# old\nAPP_PG_PASSWORD=Abc123 \nAPP_PG_USER=app\n") == want


def previous(phase, deployed, **given):
    variables = {"app_secrets_phase": phase, "_app_env_file": {"stat": {"exists": deployed is not None}},
                 "_app_deployed_env": deployed or {},
                 "_app_passwords": {"db": "NEW", "redis": "RNEW", "sentinel": "SNEW"}, "app_db_password_previous": "",
                 "app_redis_password_previous": "", "app_sentinel_password_previous": ""}
    variables.update(given)
    return set_fact("Decide the previous passwords written beside the new ones", variables)["_app_secrets_previous"]


def test_accept_keeps_what_the_service_runs_with():
    deployed = decode(rendered("OLD pw", "ROLD", "SNEW"))
    assert previous("accept", deployed) == {"pg": "OLD pw", "redis": "ROLD", "sentinel": ""}


def test_accept_rerun_keeps_the_previous_value():
    deployed = decode(rendered("NEW", "RNEW", "SNEW", {"pg": "OLD", "redis": "ROLD", "sentinel": ""}))
    assert previous("accept", deployed) == {"pg": "OLD", "redis": "ROLD", "sentinel": ""}


def test_nothing_changed_nothing_previous():
    deployed = decode(rendered("NEW", "RNEW", "SNEW"))
    assert previous("accept", deployed) == {"pg": "", "redis": "", "sentinel": ""}
    assert previous("accept", None) == {"pg": "", "redis": "", "sentinel": ""}


def test_final_drops_previous_and_explicit_variables_win_in_accept():
    deployed = decode(rendered("OLD", "ROLD", "SOLD"))
    assert previous("final", deployed) == {"pg": "", "redis": "", "sentinel": ""}
    want = {"pg": "GIVEN", "redis": "ROLD", "sentinel": "SOLD"}
    assert previous("accept", deployed, app_db_password_previous="GIVEN") == want  # noqa: S106 (test data)


def test_template_writes_previous_only_when_not_empty():
    text = rendered("NEW", "RNEW", "SNEW", {"pg": "", "redis": "", "sentinel": ""})
    assert "_PREVIOUS" not in text
    assert rendered("NEW", "RNEW", "SNEW") == text
