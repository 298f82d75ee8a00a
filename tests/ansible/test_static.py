"""The playbook without boards: syntax, lint, the example inventory, board detection and the
preflight checks that stop a run before anything changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playbook_harness import INVENTORY, ROOT, SITE, recap, run, tool

pytestmark = [pytest.mark.ansible, pytest.mark.timeout(120)]

HOST_VARIABLES = ("edge_device", "edge_mesh_address", "edge_model", "edge_threads")


def test_site_playbook_passes_the_syntax_check():
    result = run([tool("ansible-playbook"), "-i", str(INVENTORY), str(SITE), "--syntax-check"], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_is_clean():
    result = run([tool("yamllint"), "--strict", "playbooks", ".yamllint", ".ansible-lint"], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile_is_clean():
    result = run([tool("ansible-lint"), "--offline", "--nocolor", "playbooks"], timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout


def test_example_inventory_describes_real_boards_only_and_documents_each_host(tmp_path: Path):
    text = INVENTORY.read_text()
    for name in HOST_VARIABLES:
        assert f"#   {name}" in text, f"{name} is not documented in {INVENTORY.name}"
    for gone in ("[virtual]", "edge_root", "edge_service_manager", "ansible_connection=local"):
        assert gone not in text, gone
    # The commented example hosts are what a user uncomments: they must parse and carry every variable.
    examples = "\n".join(line[2:] if line.startswith(("# pi-", "# orin-")) else line for line in text.splitlines())
    (tmp_path / "inventory.ini").write_text(examples)
    result = run([tool("ansible-inventory"), "-i", str(tmp_path / "inventory.ini"), "--list"], timeout=60)
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert set(inventory["edge"]["children"]) == {"raspberry_pi", "jetson"}
    assert inventory["raspberry_pi"]["hosts"] == ["pi-1", "pi-2"] and inventory["jetson"]["hosts"] == ["orin-1"]
    for host in ("pi-1", "pi-2", "orin-1"):
        variables = inventory["_meta"]["hostvars"][host]
        assert all(name in variables for name in HOST_VARIABLES), variables
        assert variables["ansible_become"] and variables["edge_http_proxy"] == ""


def test_no_role_has_a_second_code_path_for_virtual_boards():
    roles = ROOT / "playbooks" / "roles"
    assert not (roles / "common" / "library" / "edge_process.py").exists()
    for path in roles.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for gone in ("edge_root", "edge_service_manager", "process_mode", "edge_process"):
                assert gone not in text, f"{path.relative_to(ROOT)} mentions {gone}"


PROBE = """
- name: Detect the board class and choose llama.cpp's flags.
  hosts: probe
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Detect the board.
      ansible.builtin.include_role:
        name: common
        tasks_from: detect
    - name: Check what llama.cpp needs.
      ansible.builtin.include_role:
        name: llama_cpp
        tasks_from: preflight
        public: true
    - name: Compare with what the fake board should be.
      ansible.builtin.assert:
        that:
          - common_board == expect_board
          - common_l4t_version == expect_l4t
          - llama_cpp_cmake_args == expect_cmake_args
        fail_msg: "{{ common_board }} {{ common_l4t_version }} {{ llama_cpp_cmake_args }}"
"""


def test_board_detection_tells_raspberry_pi_jetson_and_generic_apart(tmp_path: Path):
    fake = {
        "pi-model": "Raspberry Pi 5 Model B Rev 1.0\0",
        "orin-model": "NVIDIA Jetson AGX Orin Developer Kit\0",
        "orin-release": "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, "
                        "DATE: Mon May  6 17:34:21 UTC 2024\n",
    }
    for name, content in fake.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "cuda" / "bin").mkdir(parents=True)
    (tmp_path / "cuda" / "bin" / "nvcc").write_text("")
    missing = tmp_path / "missing"
    lines = [
        f"pi common_device_tree_model_path={tmp_path}/pi-model common_tegra_release_path={missing} "
        "expect_board=raspberry_pi expect_l4t='' expect_cmake_args=-DGGML_NATIVE=on",
        f"orin common_device_tree_model_path={tmp_path}/orin-model common_tegra_release_path={tmp_path}/orin-release "
        "expect_board=jetson expect_l4t=36.3.0 "
        "expect_cmake_args='-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=87'",
        f"pc common_device_tree_model_path={missing} common_tegra_release_path={missing} "
        "expect_board=generic expect_l4t='' expect_cmake_args=-DGGML_NATIVE=on",
    ]
    (tmp_path / "hosts.ini").write_text(
        "[probe]\n" + "\n".join(lines) + "\n\n[probe:vars]\nansible_connection=local\n"
        "ansible_python_interpreter={{ ansible_playbook_python }}\n"
        f"llama_cpp_cuda_home={tmp_path}/cuda\n")
    (tmp_path / "probe.yml").write_text(PROBE)
    result = run([tool("ansible-playbook"), "-i", str(tmp_path / "hosts.ini"), str(tmp_path / "probe.yml")],
                 timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {host: r["failed"] for host, r in recap(result.stdout).items()} == {"pi": 0, "orin": 0, "pc": 0}


CHOOSE = """
- name: Choose each fake board's model.
  hosts: probe
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Choose the model.
      ansible.builtin.include_role:
        name: models
        tasks_from: preflight
    - name: Compare with the model the fake board should get.
      ansible.builtin.assert:
        that: models_selected.name == expect_model and models_selected.kind == expect_kind
        fail_msg: "{{ models_selected | to_json }}"
"""


def test_models_are_chosen_by_name_by_path_or_by_ram_and_must_fit(tmp_path: Path):
    gguf = tmp_path / "tiny-model.gguf"
    gguf.write_bytes(b"\0" * 1024)
    lines = [
        "small edge_model=auto models_ram_mb=700 expect_model=smollm2-135m-instruct-q4_1 expect_kind=card",
        "medium edge_model=auto models_ram_mb=1800 expect_model=smollm2-360m-instruct-q4_k_m expect_kind=card",
        "named edge_model=qwen2.5-0.5b-instruct-q4_k_m models_ram_mb=4000 "
        "expect_model=qwen2.5-0.5b-instruct-q4_k_m expect_kind=card",
        f"file edge_model={gguf} models_ram_mb=700 expect_model=tiny-model expect_kind=path",
        "toobig edge_model=llama-3.2-3b-instruct-q4_k_m models_ram_mb=1500 expect_model=x expect_kind=card",
        "nofit edge_model=auto models_ram_mb=100 expect_model=x expect_kind=card",
    ]
    (tmp_path / "hosts.ini").write_text(
        "[probe]\n" + "\n".join(lines) + "\n\n[probe:vars]\nansible_connection=local\n"
        "ansible_python_interpreter={{ ansible_playbook_python }}\nedge_device={{ inventory_hostname }}\n"
        f"edge_control_agent={ROOT}/.venv/bin/edge-agent\n")
    (tmp_path / "choose.yml").write_text(CHOOSE)
    result = run([tool("ansible-playbook"), "-i", str(tmp_path / "hosts.ini"), str(tmp_path / "choose.yml")],
                 timeout=90)
    failed = {host: r["failed"] for host, r in recap(result.stdout).items()}
    assert failed == {"small": 0, "medium": 0, "named": 0, "file": 0, "toobig": 1, "nofit": 1}, result.stdout
    output = " ".join(result.stdout.split())
    assert "toobig (toobig) has 1500 MB of RAM but llama-3.2-3b-instruct-q4_k_m needs 4096 MB" in output
    assert "nofit: no model card fits 100 MB of RAM" in output


def test_duplicate_device_ids_stop_the_run_before_anything_changes(tmp_path: Path):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(INVENTORY.read_text() + (
        "\n[edge:children]\nprobe\n\n[probe]\n"
        "one edge_device=board-1 edge_mesh_address=127.0.31.1\n"
        "two edge_device=board-1 edge_mesh_address=127.0.31.2\n\n"
        "[probe:vars]\nansible_connection=local\nansible_python_interpreter={{ ansible_playbook_python }}\n"))
    extra = json.dumps({"edge_pki_dir": str(tmp_path / "pki")})
    result = run([tool("ansible-playbook"), "-i", str(inventory), str(SITE), "-e", extra], timeout=90)
    assert result.returncode != 0
    assert "Device ids must be unique" in result.stdout
    assert "two=board-1" in result.stdout
    assert not (tmp_path / "pki").exists()
    assert all(r["changed"] == 0 for r in recap(result.stdout).values())


def test_every_role_has_the_expected_shape():
    roles = ROOT / "playbooks" / "roles"
    for role in ("common", "llama_cpp", "models", "mesh", "agent"):
        for part in ("defaults/main.yml", "tasks/main.yml", "handlers/main.yml", "meta/main.yml",
                     "meta/argument_specs.yml", "vars/main.yml"):
            assert (roles / role / part).is_file(), f"{role}/{part}"
        assert any((roles / role / "templates").iterdir()), f"{role} has no templates"
