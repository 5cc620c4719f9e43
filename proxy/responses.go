package proxy

import (
	"net/http"

	"github.com/tollgate/tollgate/edge"
)

const requestIDHeader = "X-Request-Id"

// The proxy's own refusals; the token refusals are edge.Challenges.
var (
	errNoRoute          = edge.NewRefusal(http.StatusNotFound, "", "not_found", "no route")
	errNonCanonicalPath = edge.NewRefusal(http.StatusBadRequest, "", "invalid_request", "path is not canonical")
	errBadGateway       = edge.NewRefusal(http.StatusBadGateway, "", "bad_gateway", "the upstream could not be reached")
	errTimeout          = edge.NewRefusal(http.StatusGatewayTimeout, "", "gateway_timeout", "the upstream did not answer in time")
	errBodyTooSlow      = edge.NewRefusal(http.StatusRequestTimeout, "", "request_timeout", "the request body came too slowly")
	errNoIdentity       = edge.NewRefusal(http.StatusInternalServerError, "", "server_error", "the request's identity could not be established")
)
