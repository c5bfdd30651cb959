"""The alert settings (DDS_ALERT_URLS, DDS_ALERT_TASKS, DDS_ALERT_WINDOW_HOURS): one line naming what is wrong,
never a URL's secret; destinations shown by scheme and host only; the task patterns."""

import pytest

from pipeline.alerts.delivery import Destination, redact
from pipeline.alerts.rules import task_matcher
from pipeline.defs.resources import AlertsResource
from pipeline.definitions import alerts_resource
from pipeline.config import ConfigError, Deployment

SECRET = "TIiajkdnlazkcOXrIdevi7FQ"
SLACK = f"slack://T1JJ3T3L2/A1BRTD4JD/{SECRET}"
MAIL = f"mailtos://alerts:{SECRET}@smtp.example.com?to=ops@example.com"


def settings(tmp_path, **env: str) -> Deployment:
    return Deployment.from_env({"DDS_DATA_DIR": str(tmp_path), **env})


def test_urls_split_on_commas_and_whitespace_and_are_shown_by_scheme_and_host(tmp_path):
    loaded = settings(tmp_path, DDS_ALERT_URLS=f" {SLACK},\n{MAIL}  json://hooks.example.com:8080/a/{SECRET} ")
    assert loaded.alert_destinations == ("slack://T1JJ3T3L2", "mailtos://smtp.example.com",
                                         "json://hooks.example.com:8080")
    assert SECRET not in repr(loaded)
    assert settings(tmp_path, DDS_ALERT_URLS=" , ").alert_destinations == ()


@pytest.mark.parametrize("urls, position", [("nonsense://x", "1 of 1"), (f"{SLACK} ,, not-a-url", "2 of 2"),
                                             (f"{MAIL} {SLACK} https//{SECRET}", "3 of 3")])
def test_a_url_apprise_cannot_parse_is_named_by_its_position_never_its_text(tmp_path, urls, position):
    with pytest.raises(ConfigError) as error:
        settings(tmp_path, DDS_ALERT_URLS=urls)
    assert str(error.value).startswith(f"DDS_ALERT_URLS: URL {position} is not a URL apprise can parse")
    assert SECRET not in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("value, message", [("0", "DDS_ALERT_WINDOW_HOURS=0 is outside 1..8784"),
                                            ("a day", "DDS_ALERT_WINDOW_HOURS='a day' is not a whole number"),
                                            ("9000", "DDS_ALERT_WINDOW_HOURS=9000 is outside 1..8784")])
def test_the_window_is_a_whole_number_of_hours(tmp_path, value, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        settings(tmp_path, DDS_ALERT_WINDOW_HOURS=value)
    assert settings(tmp_path).alert_window_hours == 24
    assert settings(tmp_path, DDS_ALERT_WINDOW_HOURS="1").alert_window_hours == 1


def test_task_patterns_match_whole_names_with_star_for_any_run_of_characters(tmp_path):
    assert settings(tmp_path).alert_tasks == ()
    assert settings(tmp_path, DDS_ALERT_TASKS="*, Backup").alert_tasks == ()
    patterns = settings(tmp_path, DDS_ALERT_TASKS=" *Backup* , Restore%_Instance ,").alert_tasks
    assert patterns == ("*Backup*", "Restore%_Instance")
    matcher = task_matcher(patterns)
    assert [name for name in ("FullBackup", "backup", "Backups daily", "RestoreXInstance", "Restore%_Instance",
                              "Restart") if matcher.fullmatch(name)] == ["FullBackup", "backup", "Backups daily",
                                                                         "Restore%_Instance"]


def test_the_resource_takes_the_urls_as_an_env_var_and_its_repr_holds_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("DDS_ALERT_URLS", SLACK)
    resource = alerts_resource(settings(tmp_path, DDS_ALERT_URLS=SLACK))
    assert type(resource.urls).__name__ == "EnvVar" and resource.urls.env_var_name == "DDS_ALERT_URLS"
    assert SECRET not in repr(AlertsResource(urls=SLACK)) and "slack://T1JJ3T3L2" in repr(AlertsResource(urls=SLACK))
    assert alerts_resource(settings(tmp_path)).urls == ""


def test_a_failure_text_loses_every_part_of_the_url_but_scheme_and_host():
    destination = Destination(MAIL)
    assert repr(destination) == "Destination('mailtos://smtp.example.com')" and SECRET not in destination.ledger_name
    said = redact(f"Failed to send to {MAIL} as alerts:{SECRET} (smtp.example.com said 535)", MAIL)
    assert SECRET not in said and "smtp.example.com said 535" in said
