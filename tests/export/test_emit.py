"""The shared emitter: what yaml.safe_load reads back is exactly the dict, with a comment per value."""

from __future__ import annotations

import pytest
import yaml

from tuner.export.emit import document


@pytest.mark.parametrize(
    "text",
    [
        "# a profile\nname: x\n  indented: 1\n",
        "two lines\nno newline at the end",
        "two newlines at the end\n\n",
        "  starts with spaces\nthen not\n",
        "blank line\n\ninside\n",
        "trailing spaces   \nkept\n",
    ],
)
def test_a_multi_line_string_is_a_literal_block_read_back_byte_for_byte(text: str) -> None:
    out = document({"data": {"profile.yaml": text}}, {"data.profile.yaml": "the file"})
    assert yaml.safe_load(out) == {"data": {"profile.yaml": text}}
    assert "profile.yaml: |" in out and "  # the file" in out


def test_every_value_and_list_entry_can_carry_its_comment() -> None:
    d = {
        "spec": {
            "replicas": 2,
            "args": ["serve", "--drain-s", "1.5"],
            "containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}],
            "empty": {},
            "none": [],
            "quoted": "yes",
        }
    }
    why = {
        "spec.replicas": "two",
        "spec.args.2": "the drain",
        "spec.containers.0.env.0.value": "one thread",
        "spec.containers": "one container",
    }
    out = document(d, why, ["# head"])
    assert yaml.safe_load(out) == d
    lines = out.splitlines()
    assert lines[0] == "# head"
    assert "  replicas: 2  # two" in lines
    assert "    - '1.5'  # the drain" in lines
    assert "  containers:  # one container" in lines
    assert any(ln.strip() == "value: '1'  # one thread" for ln in lines)
    assert "  quoted: 'yes'" in lines  # a YAML 1.1 boolean word stays a string
