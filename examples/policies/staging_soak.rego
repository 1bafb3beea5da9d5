# Staging soak: an image must have run in staging for at least 24 hours before it may go to
# production. The deploy input carries when the digest was first deployed to staging
# (`input.staging.first_deployed_at_unix`) and the time of the check (`input.now_unix`).
package lineage.soak

soak_hours := 24

deny contains {
	"code": "ACME002",
	"msg": sprintf("image `%s` was never deployed to staging", [input.deploy.image]),
	"hint": "deploy the same digest to staging first: `lineage deploy record --env staging ...`, then wait 24 hours",
} if {
	input.kind == "deploy"
	input.environment.production
	input.staging == null
}

deny contains {
	"code": "ACME002",
	"msg": sprintf("image `%s` has soaked in staging for %d hours; production needs %d", [input.deploy.image, hours, soak_hours]),
	"hint": sprintf("wait until %d hours after its first staging deploy (%s), or record an exception for ACME002", [soak_hours, input.staging.first_deployed_at]),
} if {
	input.kind == "deploy"
	input.environment.production
	hours := floor((input.now_unix - input.staging.first_deployed_at_unix) / 3600)
	hours < soak_hours
}
