// Package deployments holds no code: it is the home of the deployment
// files (load balancer, Prometheus, Grafana, Kubernetes, systemd; see
// README.md) and of the tests that check them and run the docker-compose
// topology as plain processes.
package deployments
