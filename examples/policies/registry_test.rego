package lineage.registry_test

import data.lineage.registry

mirrored := {
	"kind": "build",
	"build": {"bases": [{"name": "registry.acme.dev/mirror/debian", "registry": "registry.acme.dev"}]},
	"dockerfile": {"bases": [{"reference": "registry.acme.dev/mirror/debian:12", "registry": "registry.acme.dev"}]},
}

test_mirrored_base_passes if {
	count(registry.deny) == 0 with input as mirrored
}

test_docker_hub_base_is_denied if {
	denials := registry.deny with input as {
		"kind": "build",
		"build": {"bases": [{"name": "docker.io/library/debian", "registry": "docker.io"}]},
		"dockerfile": null,
	}
	some d in denials
	d.code == "ACME001"
	contains(d.msg, "docker.io/library/debian")
}

test_dockerfile_base_is_denied if {
	count(registry.deny) == 1 with input as {
		"kind": "build",
		"build": {"bases": []},
		"dockerfile": {"bases": [{"reference": "ghcr.io/acme/tools:1", "registry": "ghcr.io"}]},
	}
}

test_deploys_are_not_judged if {
	count(registry.deny) == 0 with input as {"kind": "deploy"}
}
