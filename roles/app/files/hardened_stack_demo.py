"""hardened.stack demo application (WSGI, served by gunicorn).

  GET  /          which app server answered
  GET  /live      the process is up (200)
  GET  /health    PostgreSQL through the write endpoint and Redis through Sentinel:
                  200 when both answer, 503 with the details otherwise
  POST /write?id=N   insert N into the ledger table (acknowledged after COMMIT)
  GET  /read?id=N    200 when N is in the ledger, 404 otherwise

Configuration comes from the environment (the role writes it to a 0600 file):
APP_PG_HOSTS, APP_PG_PORT, APP_PG_DB, APP_PG_USER, APP_PG_PASSWORD, APP_PG_SSLMODE,
APP_PG_SSLROOTCERT, APP_REDIS_SENTINELS (host:port,..., IPv6 as [addr]:port), APP_REDIS_MASTER, APP_REDIS_USER,
APP_REDIS_PASSWORD, APP_SENTINEL_USER, APP_SENTINEL_PASSWORD, APP_TIMEOUT (seconds).

Password rotation: APP_PG_PASSWORD_PREVIOUS, APP_REDIS_PASSWORD_PREVIOUS and
APP_SENTINEL_PASSWORD_PREVIOUS (optional) hold the value being replaced while a rotation runs.
A connection refused for its password ("password authentication failed", WRONGPASS) is tried
once more with the other value; the value that worked last is tried first next time (per
process). PostgreSQL keeps one password per role, so this is how the app keeps working while
ALTER ROLE happens between its two restarts; an application of your own must do the same, or
keep its connections open across the change.
"""

import json
import os
import socket
from urllib.parse import parse_qs

HOST = socket.gethostname()
TIMEOUT = float(os.environ.get("APP_TIMEOUT", "2"))


# name of the secret -> index of the candidate that worked last (each gunicorn worker has its own)
_PREFERRED = {}


def _candidates(name):
    """The values of secret ``name`` to try: its variable, then ``<name>_PREVIOUS`` when set
    and different (a rotation in progress)."""
    current = os.environ.get(name, "")
    previous = os.environ.get(name + "_PREVIOUS", "")
    return [current] + ([previous] if previous and previous != current else [])


def _with_candidates(name, attempt, refused):
    """``attempt(value)`` with the value of ``name`` that worked last, and once more with the
    other candidate when the first is refused for its password (``refused(exc)``)."""
    values = _candidates(name)
    first = _PREFERRED.get(name, 0) if _PREFERRED.get(name, 0) < len(values) else 0
    order = [first] + [i for i in range(len(values)) if i != first]
    for n, i in enumerate(order):
        try:
            result = attempt(values[i])
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is a refused password with a fallback left
            if n + 1 < len(order) and refused(exc):
                continue
            raise
        _PREFERRED[name] = i
        return result
    raise RuntimeError("no candidate for %s" % name)  # not reached: values is never empty


def _pg_refused(exc):
    return "password authentication failed" in str(exc)


def _redis_refused(exc):
    # redis-py 4.x raises WRONGPASS as a ResponseError, later versions as AuthenticationError
    from redis.exceptions import AuthenticationError

    return isinstance(exc, AuthenticationError) or "WRONGPASS" in str(exc) or "NOAUTH" in str(exc)


def _sentinel_refused(exc):
    # a Sentinel that refuses the password is skipped by discover_master in newer redis-py:
    # no master found is then the only sign of it
    from redis.sentinel import MasterNotFoundError

    return _redis_refused(exc) or isinstance(exc, MasterNotFoundError)


def _pg_connect():
    import psycopg2

    hosts = os.environ.get("APP_PG_HOSTS", "")
    if not hosts:
        raise RuntimeError("APP_PG_HOSTS is not set")

    def connect(password):
        return psycopg2.connect(
            host=hosts, port=",".join([os.environ.get("APP_PG_PORT", "5432")] * len(hosts.split(","))),
            dbname=os.environ.get("APP_PG_DB", "app"), user=os.environ.get("APP_PG_USER", "app"),
            password=password, connect_timeout=max(1, int(TIMEOUT)),
            sslmode=os.environ.get("APP_PG_SSLMODE", "prefer"),
            sslrootcert=os.environ.get("APP_PG_SSLROOTCERT") or None,
            target_session_attrs="read-write", application_name=f"hsdemo@{HOST}")

    return _with_candidates("APP_PG_PASSWORD", connect, _pg_refused)


def _redis_master():
    from redis.sentinel import Sentinel

    sentinels = [tuple(s.rsplit(":", 1)) for s in os.environ.get("APP_REDIS_SENTINELS", "").split(",") if s]
    if not sentinels:
        raise RuntimeError("APP_REDIS_SENTINELS is not set")
    name = os.environ.get("APP_REDIS_MASTER", "main")

    def sentinel_with(password):
        # host:port, an IPv6 literal bracketed ([2001:db8::41]:26379)
        sentinel = Sentinel([(h.strip("[]"), int(p)) for h, p in sentinels], socket_timeout=TIMEOUT,
                            socket_connect_timeout=TIMEOUT,
                            sentinel_kwargs={"username": os.environ.get("APP_SENTINEL_USER") or None,
                                             "password": password or None,
                                             "socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT})
        sentinel.discover_master(name)
        return sentinel

    sentinel = _with_candidates("APP_SENTINEL_PASSWORD", sentinel_with, _sentinel_refused)

    def master_with(password):
        master = sentinel.master_for(name, username=os.environ.get("APP_REDIS_USER") or None,
                                     password=password or None, socket_timeout=TIMEOUT,
                                     socket_connect_timeout=TIMEOUT)
        master.set(f"hsdemo:health:{HOST}", "1", ex=60)
        return master

    return _with_candidates("APP_REDIS_PASSWORD", master_with, _redis_refused)


def check_database():
    try:
        with _pg_connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT inet_server_addr()::text, pg_is_in_recovery()")
            server, in_recovery = cur.fetchone()
        conn.close()
        return {"ok": not in_recovery, "server": server, "primary": not in_recovery}
    except Exception as exc:  # noqa: BLE001 - every failure is reported, not raised
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()[:300]}


def check_cache():
    try:
        master = _redis_master()
        return {"ok": True, "master": "%s:%s" % master.connection_pool.get_master_address()}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()[:300]}


def _reply(start_response, status, body, ctype="application/json"):
    data = (json.dumps(body) if ctype == "application/json" else body).encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def _ledger_id(environ):
    try:
        return int(parse_qs(environ.get("QUERY_STRING", "")).get("id", [""])[0])
    except ValueError:
        return None


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")
    if path == "/live":
        return _reply(start_response, "200 OK", {"status": "ok", "host": HOST})
    if path == "/health":
        database, cache = check_database(), check_cache()
        healthy = database["ok"] and cache["ok"]
        return _reply(start_response, "200 OK" if healthy else "503 Service Unavailable",
                      {"status": "ok" if healthy else "degraded", "host": HOST,
                       "database": database, "cache": cache})
    if path in ("/write", "/read"):
        ident = _ledger_id(environ)
        if ident is None:
            return _reply(start_response, "400 Bad Request", {"error": "id must be an integer"})
        if path == "/write" and method != "POST":
            return _reply(start_response, "405 Method Not Allowed", {"error": "POST only"})
        try:
            conn = _pg_connect()
            with conn, conn.cursor() as cur:
                if path == "/write":
                    cur.execute("CREATE TABLE IF NOT EXISTS ledger (id bigint PRIMARY KEY, "
                                "written_at timestamptz NOT NULL DEFAULT now(), via text)")
                    cur.execute("INSERT INTO ledger (id, via) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                (ident, HOST))
                    found = True
                else:
                    cur.execute("SELECT 1 FROM ledger WHERE id = %s", (ident,))
                    found = cur.fetchone() is not None
            conn.close()
        except Exception as exc:  # noqa: BLE001
            return _reply(start_response, "503 Service Unavailable", {"error": f"{type(exc).__name__}: {exc}"[:300]})
        if not found:
            return _reply(start_response, "404 Not Found", {"id": ident, "found": False})
        return _reply(start_response, "200 OK", {"id": ident, "host": HOST, "ok": True})
    if path == "/":
        return _reply(start_response, "200 OK", f"hello from {HOST}\n", "text/plain")
    return _reply(start_response, "404 Not Found", {"error": "not found"})
