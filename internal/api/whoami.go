package api

import "net/http"

// Role is what a caller's token lets it do.
type Role string

// Roles a caller can have.
const (
	RoleAdmin Role = "admin" // the admin token: read and change
	RoleRead  Role = "read"  // the read token: read only
	RoleOpen  Role = "open"  // no tokens configured (loopback only): anyone may read and change
)

// Whoami is the answer to GET /api/v1/whoami: what the caller's token may do, so that a client
// (the dashboard) shows controls only to those who may use them.
type Whoami struct {
	Role      Role `json:"role"`
	CanChange bool `json:"canChange"`
}

// role is the role of an authenticated request (the guard has already refused a bad token).
func (t Tokens) role(r *http.Request) Role {
	if t.open() {
		return RoleOpen
	}
	given, _ := bearer(r.Header.Get("Authorization"))
	if t.Admin != "" && equal(given, t.Admin) {
		return RoleAdmin
	}
	return RoleRead
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	role := s.Tokens.role(r)
	writeJSON(w, http.StatusOK, Whoami{Role: role, CanChange: role != RoleRead})
}
