"""Check the JUnit file of the packaging lab suite (.ci/packaging.sh): suite properties and
the per-test figures of the training test. Usage: python check_junit.py junit.xml"""

import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
assert suite is not None, "no testsuite"
suite_props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
for name in ("rig_version", "rig_lab_config", "rig_target", "rig_qemu"):
    assert suite_props.get(name), f"suite property {name} missing: {suite_props}"
assert " build " in suite_props["rig_target"], suite_props["rig_target"]
cases = {c.get("name"): c for c in suite.iter("testcase")}
train = cases["test_tinyprop_matches_golden"]
props = {p.get("name"): p.get("value") for p in train.findall("properties/property")}
for name in ("rig_verdict", "rig_max_loss_rel_error", "rig_max_abs_dparam", "rig_near_ties",
             "rig_steps", "rig_skipped_steps", "rig_counter_label", "rig_counter_forward",
             "rig_build_hash"):
    assert props.get(name) not in (None, ""), f"test property {name} missing: {props}"
assert props["rig_verdict"] == "ok" and int(props["rig_steps"]) == 4, props
assert props["rig_build_hash"] in suite_props["rig_target"]
print(f"junit: {len(cases)} test cases, suite properties {sorted(suite_props)}, "
      f"{len(props)} figures on {train.get('name')}")
