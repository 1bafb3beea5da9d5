package lineage.soak_test

import data.lineage.soak

deploy(now, staged) := {
	"kind": "deploy",
	"now_unix": now,
	"environment": {"name": "production", "production": true},
	"deploy": {"image": "registry.acme.dev/api@sha256:aa"},
	"staging": staged,
}

staged_at(t) := {"first_deployed_at": "2026-11-16T09:00:00Z", "first_deployed_at_unix": t}

test_soaked_a_day_passes if {
	count(soak.deny) == 0 with input as deploy(1000000 + 86400, staged_at(1000000))
}

test_one_hour_is_too_short if {
	denials := soak.deny with input as deploy(1000000 + 3600, staged_at(1000000))
	some d in denials
	d.code == "ACME002"
	contains(d.msg, "1 hours")
}

test_never_staged_is_denied if {
	denials := soak.deny with input as deploy(1000000, null)
	some d in denials
	contains(d.msg, "never deployed to staging")
}

test_staging_itself_is_not_judged if {
	count(soak.deny) == 0 with input as {
		"kind": "deploy",
		"now_unix": 0,
		"environment": {"name": "staging", "production": false},
		"deploy": {"image": "x"},
		"staging": null,
	}
}
