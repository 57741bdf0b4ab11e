/* THE route table: every path the daemon answers, with its method,
 * handler, authentication method, flags, body limit and scope. Order matters
 * only between patterns that could match the same path (none today). The one
 * file of http/ that includes api/: it wires handlers to paths. */
#ifdef HAVE_CONFIG_H
#include "autoconf.h"
#endif

#include "api/api.h"
#include "api/auth.h"
#include "api/keys.h"
#include "http/router.h"

#define ROUTE(m, p, h, auth, f, limit, scope)                                                      \
	{                                                                                          \
		m, p, h, auth, f, limit, scope, m " " p                                            \
	}

/* The authentication methods a route may name. */
#define API_KEY bw_auth_api_key

/* Ledger bodies are a few short fields. */
#define LEDGER_BODY_LIMIT (16 * 1024)
/* A telemetry batch: up to 500 readings, 1 MiB in all (the contract). */
#define TELEMETRY_BODY_LIMIT (1024 * 1024)

const struct bw_route bw_routes[] = {
    ROUTE("GET", "/healthz", bw_api_healthz, NULL, 0, 0, NULL),
    ROUTE("GET", "/readyz", bw_api_readyz, NULL, 0, 0, NULL),
    ROUTE("GET", "/v1/whoami", bw_api_whoami, API_KEY, 0, 0, NULL),
    ROUTE("POST", "/v1/accounts", bw_api_account_create, API_KEY, BW_ROUTE_JSON_BODY,
          LEDGER_BODY_LIMIT, BW_SCOPE_LEDGER_WRITE),
    ROUTE("GET", "/v1/accounts", bw_api_account_list, API_KEY, 0, 0, BW_SCOPE_LEDGER_READ),
    ROUTE("GET", "/v1/accounts/{id}", bw_api_account_get, API_KEY, 0, 0, BW_SCOPE_LEDGER_READ),
    ROUTE("GET", "/v1/accounts/{id}/entries", bw_api_account_entries, API_KEY, 0, 0,
          BW_SCOPE_LEDGER_READ),
    ROUTE("POST", "/v1/transfers", bw_api_transfer_create, API_KEY, BW_ROUTE_JSON_BODY,
          LEDGER_BODY_LIMIT, BW_SCOPE_LEDGER_WRITE),
    ROUTE("GET", "/v1/transfers/{id}", bw_api_transfer_get, API_KEY, 0, 0, BW_SCOPE_LEDGER_READ),
    ROUTE("GET", "/v1/reports/summary", bw_api_report_summary, API_KEY, 0, 0, BW_SCOPE_LEDGER_READ),
    ROUTE("POST", "/v1/devices/{device_id}/telemetry", bw_api_telemetry_ingest, API_KEY,
          BW_ROUTE_JSON_BODY, TELEMETRY_BODY_LIMIT, BW_SCOPE_TELEMETRY_WRITE),
    ROUTE("GET", "/v1/devices/{device_id}/telemetry", bw_api_telemetry_list, API_KEY, 0, 0,
          BW_SCOPE_TELEMETRY_READ),
    ROUTE("GET", "/v1/devices/{device_id}/latest", bw_api_telemetry_latest, API_KEY, 0, 0,
          BW_SCOPE_TELEMETRY_READ),
#ifdef BW_TEST_ROUTES
    ROUTE("GET", "/test/sleep", bw_api_test_sleep, NULL, 0, 0, NULL),
    ROUTE("POST", "/test/echo", bw_api_test_echo, NULL, BW_ROUTE_JSON_BODY, 0, NULL),
    ROUTE("GET", "/test/crash", bw_api_test_crash, NULL, 0, 0, NULL),
#endif
};

const size_t bw_nroutes = sizeof(bw_routes) / sizeof(bw_routes[0]);
