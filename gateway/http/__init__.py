"""HTTP plumbing shared by every capability's endpoints: dependencies, the fast ingest door,
body limits and timeouts, response helpers and serving."""
