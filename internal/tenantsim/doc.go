// Package tenantsim simulates, on one local HTTPS listener, the three
// Microsoft services the audit talks to: an Entra ID authority (OpenID
// discovery; app tokens for a client secret, a certificate-signed client
// assertion or a federated workload identity token; device-code sign-in with
// delegated tokens; and an App Service style managed identity endpoint), the
// slice of
// Microsoft Graph v1.0 the enqueuer reads (/domains and /users with $select,
// $filter, $top, $count and absolute nextLinks), and the public userrealm
// service the workers query (with a token-bucket throttle and a penalty
// window or any model of the throttlemodel family, shared by all requests or
// kept per tenant, a capacity schedule,
// answer latency and injectable faults; see RealmConfig). It also generates the directory it serves from a
// seed and knows the ground truth — which addresses the product must check and
// which of them have a consumer account — so tests can compare a run's report
// against it.
//
// It owns the simulated tenant, the simulated services and their statistics;
// it does not know the product's packages and must not import them (only
// the throttle models, which know nothing of the product either), so that
// it stays an independent referee.
//
// It is a product feature as much as a test double: it powers 'enqueue demo'
// (make demo), the tests and the benchmarks, and bin/tenantsim serves it on
// its own for experiments against the real binaries. It is no replacement
// for the real services: its tokens are unsigned look-alikes, its CA lives
// in memory, its admin endpoints (/_sim/...) are unauthenticated and its
// behaviour is a model, not a copy, of the real services' limits. Never expose
// it beyond the loopback interface, never point a product binary at it with
// real credentials, and never use its answers as evidence about a real
// tenant.
package tenantsim
