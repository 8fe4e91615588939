"""The JSON lines protocol: the schema in docs agrees with the code, and replies are decoded strictly."""

import json
from pathlib import Path

import pytest

from kmemspec.harness.protocol import CAPABILITY_METHODS
from kmemspec.harness.wire import (
    PROTOCOLS, WIRE_OPS, WireError, decode_bytes, decode_reply, machine_message, protocol_schema, render_ops_table, request, request_args,
)
from kmemspec.refmodel import VIOLATIONS, DoubleFree, SleepInAtomic, load_machine

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "protocol.schema.json").read_text())


def test_the_committed_schema_is_the_one_the_operation_table_derives():
    assert SCHEMA == protocol_schema(), "regenerate it: python -m kmemspec.harness.wire > docs/protocol.schema.json"


def test_schema_names_the_codes_violations_capabilities_and_ops():
    defs = SCHEMA["$defs"]
    assert defs["violation"]["enum"] == [v.__name__ for v in VIOLATIONS]
    hello = defs["reply"]["oneOf"][0]["properties"]["capabilities"]["items"]["enum"]
    assert set(hello) == set(CAPABILITY_METHODS)
    ops = {alt["properties"]["op"]["const"] for alt in defs["request"]["oneOf"]}
    assert ops == set(WIRE_OPS) | {"hello", "init", "bye"}
    for alt in defs["request"]["oneOf"]:
        name = alt["properties"]["op"]["const"]
        if name in WIRE_OPS:
            assert set(alt["properties"]["args"]["required"]) == set(WIRE_OPS[name].arg_names), name


def test_every_capability_method_is_an_operation():
    for cap, methods in CAPABILITY_METHODS.items():
        for m in methods:
            assert WIRE_OPS[m].capability == cap


def test_requests_are_op_args_context_and_protocol_1_peers_get_flat_ones():
    alloc = WIRE_OPS["alloc_pages"]
    assert request(alloc, (0xcc0, 2), 1) == {"op": "alloc_pages", "args": {"gfp": 0xcc0, "order": 2}, "context": 1}
    assert request(alloc, (0xcc0, 2), 1, version=1) == {"op": "alloc_pages", "gfp": 0xcc0, "order": 2, "context": 1}
    assert request(WIRE_OPS["write_phys"], (4096, b"\x01\xff"), 0)["args"] == {"phys_addr": 4096, "data": "01ff"}
    for version in PROTOCOLS:
        assert request_args(request(alloc, (1, 0), 0, version=version)) == {"gfp": 1, "order": 0}


def test_replies_decode_to_results_violations_and_env_events():
    r = decode_reply({"result": 7, "might_sleep": 1, "slept": 2, "reports": ["SleepInAtomic"]})
    assert (r.result, r.might_sleep, r.slept) == (7, 1, 2) and isinstance(r.reports[0], SleepInAtomic)
    r = decode_reply({"error": "DoubleFree", "message": "pfn 0x4"})
    assert isinstance(r.violation, DoubleFree) and str(r.violation) == "pfn 0x4"
    assert decode_reply({"crash": "KeyError: 3"}).crash == "KeyError: 3"
    assert decode_reply({"result": None, "extra": "ignored, for later versions"}).result is None


@pytest.mark.parametrize("reply,text", [
    ([1], "must be a JSON object"),
    ({}, "has \"result\", \"error\" or \"crash\""),
    ({"error": "NoSuchThing"}, "unknown violation 'NoSuchThing'"),
    ({"result": 1, "might_sleep": -1}, "'might_sleep' must be a count"),
    ({"result": 1, "reports": "DoubleFree"}, "\"reports\" must be a list"),
])
def test_malformed_replies_say_what_is_wrong(reply, text):
    with pytest.raises(WireError) as e:
        decode_reply(reply)
    assert text in str(e.value)


def test_bytes_and_machine_messages():
    assert decode_bytes("00ff") == b"\x00\xff"
    with pytest.raises(WireError):
        decode_bytes("xyz")
    m = load_machine("tiny")
    msg = machine_message(m)
    assert msg["free_ranges"][0] == [3, 100] and json.loads(json.dumps(msg)) == msg


def test_the_operations_table_in_the_docs_is_the_derived_one():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    assert render_ops_table() in doc, "docs/protocol.md's operations table differs from kmemspec.harness.wire.render_ops_table()"


@pytest.mark.parametrize("version", PROTOCOLS)
def test_the_server_answers_both_protocol_versions(version):
    from kmemspec.harness.serve import _Server

    server = _Server("reference", "tiny")
    assert server.handle({"op": "hello", "protocol": version})["protocol"] == version
    reply = server.handle(request(WIRE_OPS["alloc_pages"], (0xcc0, 1), 0, version=version))
    assert isinstance(reply["result"], int) and reply["might_sleep"] == 1
