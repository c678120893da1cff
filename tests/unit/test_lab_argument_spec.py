"""roles/lab input checks: the argument spec (types, lab_state) and the Incus name rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROLE = Path(__file__).resolve().parents[2] / "roles" / "lab"


@pytest.fixture(scope="module")
def validator() -> ArgumentSpecValidator:
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    return ArgumentSpecValidator(spec["argument_specs"]["main"]["options"])


@pytest.fixture(scope="module")
def name_pattern() -> re.Pattern[str]:
    # The role checks names with Jinja's `match` test, which is re.match.
    return re.compile(yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["lab_name_pattern"])


def test_defaults_match_the_spec(validator: ArgumentSpecValidator) -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    result = validator.validate({})
    assert result.error_messages == []
    for name, value in defaults.items():
        assert result.validated_parameters[name] == value, name


def test_good_input_is_accepted(validator: ArgumentSpecValidator) -> None:
    result = validator.validate(
        {
            "lab_instances": ["web1", "db-01"],
            "lab_state": "absent",
            "lab_image": "images:ubuntu/24.04/cloud",
            "lab_cloud_init_user_data": "#cloud-config\npackages: [python3]\n",
            "lab_project": "tp13",
            "lab_remote": "local",
            "lab_ready_timeout": "30",
        }
    )
    assert result.error_messages == []
    assert result.validated_parameters["lab_ready_timeout"] == 30


@pytest.mark.parametrize("state", ["started", "Present", ""], ids=["started", "case", "empty"])
def test_unknown_state_is_rejected(validator: ArgumentSpecValidator, state: str) -> None:
    result = validator.validate({"lab_state": state})
    assert len(result.error_messages) == 1
    message = result.error_messages[0]
    assert "lab_state" in message
    assert "present, absent" in message
    assert f"got: {state}" in message


@pytest.mark.parametrize(
    ("params", "option"),
    [
        ({"lab_instances": {"host1": {}}}, "lab_instances"),
        ({"lab_ready_timeout": 1.5}, "lab_ready_timeout"),
        ({"lab_ready_timeout": "soon"}, "lab_ready_timeout"),
    ],
    ids=["instances-dict", "timeout-fraction", "timeout-text"],
)
def test_wrong_types_are_rejected_naming_the_option(
    validator: ArgumentSpecValidator, params: dict, option: str
) -> None:
    result = validator.validate(params)
    assert result.error_messages, params
    assert option in result.error_messages[0]


def test_instances_list_is_a_list_of_strings(validator: ArgumentSpecValidator) -> None:
    # A comma-separated string becomes a list, as everywhere in Ansible.
    result = validator.validate({"lab_instances": "host1,host2"})
    assert result.error_messages == []
    assert result.validated_parameters["lab_instances"] == ["host1", "host2"]


def test_empty_list_passes_the_spec_so_the_role_checks_it() -> None:
    # An argument spec cannot require a non-empty list: tasks/validate.yml does, before any
    # incus command (tests/integration/test_lab.py runs that check for real).
    validate = yaml.safe_load((ROLE / "tasks" / "validate.yml").read_text())
    empty_check = validate[0]
    assert "lab_instances | length > 0" in empty_check["ansible.builtin.assert"]["that"]
    assert "empty list" in empty_check["ansible.builtin.assert"]["fail_msg"]


@pytest.mark.parametrize(
    "name", ["host1", "h", "web-01", "A1-b2", "a" * 63], ids=["host1", "one", "dash", "mixed", "63"]
)
def test_incus_names_accepted(name_pattern: re.Pattern[str], name: str) -> None:
    assert name_pattern.match(name)


@pytest.mark.parametrize(
    "name",
    ["", "1host", "-host", "host-", "host_1", "host 1", "host.lab", "hôte", "a" * 64, "host1\n"],
    ids=[
        "empty",
        "digit",
        "lead-dash",
        "trail-dash",
        "underscore",
        "space",
        "dot",
        "accent",
        "64",
        "newline",
    ],
)
def test_incus_names_refused(name_pattern: re.Pattern[str], name: str) -> None:
    assert name_pattern.match(name) is None
