"""The compose stack's files agree with the local stack's code: checked without an engine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from ordertrack.stack.compose import write_env_file
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.mariadb import CDC_GRANTS, PIPELINE_GRANTS, WORKLOAD_GRANTS
from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = ROOT / "docker" / "mariadb" / "initdb" / "02-accounts.sh"
EXAMPLE = ROOT / "docker" / "compose.env.example"
# Only the local stack has these: admin sockets, the PostgreSQL warehouse beside DuckDB.
LOCAL_ONLY = {"MARIADB_ADMIN_SOCKET", "POSTGRES_WAREHOUSE_URL", "POSTGRES_ADMIN_SOCKET_DIR"}


def _env_keys(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if re.match(r"^[A-Z_0-9]+=", line))
    return dict(pairs)


def test_mariadb_accounts_script_grants_what_the_local_stack_grants() -> None:
    script = ACCOUNTS.read_text()
    found = {name: tuple(re.search(rf"^{name}='([^']*)'", script, re.M).group(1).split(";"))  # type: ignore[union-attr]
             for name in ("PIPELINE_GRANTS", "WORKLOAD_GRANTS", "CDC_GRANTS")}
    assert found == {"PIPELINE_GRANTS": PIPELINE_GRANTS, "WORKLOAD_GRANTS": WORKLOAD_GRANTS, "CDC_GRANTS": CDC_GRANTS}


def test_env_example_has_the_local_stack_variable_names(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ORDERTRACK_STATE_DIR", str(tmp_path))
    from ordertrack.stack import Stack

    local = set(Stack(StackLayout.from_env()).env()) - LOCAL_ONLY
    assert local <= set(_env_keys(EXAMPLE)), sorted(local - set(_env_keys(EXAMPLE)))


def test_env_file_gets_fresh_passwords_and_the_local_base(tmp_path: Path) -> None:
    target = tmp_path / "compose.env"
    write_env_file(EXAMPLE, target)
    values = _env_keys(target)
    assert "change-me" not in target.read_text()
    assert len({values[k] for k in ("MYSQL_PASSWORD", "WORKLOAD_MYSQL_PASSWORD", "CDC_MYSQL_PASSWORD")}) == 3
    assert values["ORDERTRACK_BASE_IMAGE"] == values["ORDERTRACK_PYTHON_BASE_IMAGE"] == "ordertrack/debian:bookworm"
    assert target.stat().st_mode & 0o077 == 0


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        service_missing("docker-compose")
    env = tmp_path / "compose.env"
    write_env_file(EXAMPLE, env)
    out = subprocess.run(["docker-compose", "--env-file", str(env), "--profile", "demo", "--profile", "tools",
                          "--profile", "cdc", "config"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin:/usr/local/bin", "ORDERTRACK_ENV_FILE": str(env)})
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    services = config["services"]
    assert set(services) == {"kafka", "mariadb", "s3", "connect", "topics", "producer", "worker", "scheduler",
                             "generate", "cli"}
    for role in ("producer", "worker", "scheduler"):
        assert services[role]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert services[role]["volumes"][0].endswith(":/var/lib/ordertrack/warehouse:rw")
    assert services["producer"]["command"] == ["produce", "--every", "15m"]
    assert set(config["volumes"]) == {"kafka-data", "mariadb-data", "warehouse", "connect-history"}
    assert services["connect"]["environment"]["CDC_MYSQL_PASSWORD"] == _env_keys(env)["CDC_MYSQL_PASSWORD"]
    assert services["worker"]["environment"]["MYSQL_HOST"] == "mariadb"  # the env file reached the containers
    # MariaDB and Connect get only their own variables: no other service's secrets.
    assert "AWS_SECRET_ACCESS_KEY" not in services["mariadb"]["environment"]
    assert set(services["connect"]["environment"]) & {"MYSQL_PASSWORD", "WORKLOAD_MYSQL_PASSWORD"} == set()
    # Published ports answer on the loopback interface only.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_accounts_script_quotes_any_password_as_a_mariadb_literal() -> None:
    """The password reaches MariaDB as written: quotes doubled, backslashes escaped (MariaDB reads
    `\\` as an escape in a string literal), `$`, `"` and `&` untouched."""
    password = "a'b\\c$d\"e&f\\"
    # Only the function: sourcing the script would create the accounts.
    function = re.search(r"^ordertrack_literal\(\) \{.*?^\}", ACCOUNTS.read_text(), re.M | re.S).group(0)  # type: ignore[union-attr]
    out = subprocess.run(["bash", "-c", f'shopt -u patsub_replacement 2>/dev/null; {function}\nordertrack_literal "$1"',
                          "_", password], capture_output=True, text=True, timeout=30)
    literal = out.stdout
    assert literal == "'a''b\\\\c$d\"e&f\\\\'"
    # Reading the literal back the way MariaDB does gives the password.
    body = literal[1:-1]
    assert re.sub(r"\\(.)|''", lambda m: m.group(1) or "'", body) == password
