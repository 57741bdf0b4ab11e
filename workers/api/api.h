/* Handlers, one file per API area; routes.c wires them to paths. */
#ifndef BW_API_H
#define BW_API_H

#include "http/request.h"

void bw_api_healthz(struct bw_request *req);
void bw_api_readyz(struct bw_request *req);
void bw_api_whoami(struct bw_request *req);
void bw_api_account_create(struct bw_request *req);
void bw_api_account_list(struct bw_request *req);
void bw_api_account_get(struct bw_request *req);
void bw_api_account_entries(struct bw_request *req);
void bw_api_transfer_create(struct bw_request *req);
void bw_api_transfer_get(struct bw_request *req);
void bw_api_report_summary(struct bw_request *req);
void bw_api_telemetry_ingest(struct bw_request *req);
void bw_api_telemetry_list(struct bw_request *req);
void bw_api_telemetry_latest(struct bw_request *req);

#ifdef BW_TEST_ROUTES
void bw_api_test_sleep(struct bw_request *req);
void bw_api_test_echo(struct bw_request *req);
void bw_api_test_crash(struct bw_request *req);
#endif

#endif
