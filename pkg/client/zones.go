package client

import (
	"context"
	"net/http"
)

// Zone is an IEC 62443 zone.
type Zone struct {
	Name        string `json:"name"`
	Level       int    `json:"level"`
	CreatedTime string `json:"created_time"`
}

// Conduit allows traffic between zones on one port.
type Conduit struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"`
	// MTLS: the flow must be mutually authenticated with node certificates.
	MTLS bool `json:"mtls,omitempty"`
	// Policy is the generated policy's name in the warden store (answers only).
	Policy string `json:"policy,omitempty"`
}

// ConduitCheckRequest asks whether a node may connect to another.
type ConduitCheckRequest struct {
	FromNode string `json:"from_node"`
	ToNode   string `json:"to_node"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// ConduitDecision answers a ConduitCheckRequest.
type ConduitDecision struct {
	Decision string   `json:"decision"`
	FromZone string   `json:"from_zone"`
	ToZone   string   `json:"to_zone"`
	Reasons  []string `json:"reasons"`
	Errors   []string `json:"errors"`
}

// ZoneCreate creates a zone with a security level (1..4).
func (c *Client) ZoneCreate(ctx context.Context, name string, level int) (Zone, error) {
	var out Zone
	_, err := c.do(ctx, http.MethodPost, "/v1/zones", map[string]any{"name": name, "level": level}, &out)
	return out, err
}

// ZoneList lists zones.
func (c *Client) ZoneList(ctx context.Context) ([]Zone, error) {
	var out struct {
		Zones []Zone `json:"zones"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/zones", nil, &out)
	return out.Zones, err
}

// ConduitCreate creates a conduit (a generated policy in the warden store).
func (c *Client) ConduitCreate(ctx context.Context, cd Conduit) (Conduit, error) {
	var out Conduit
	_, err := c.do(ctx, http.MethodPost, "/v1/conduits", Conduit{From: cd.From, To: cd.To, Port: cd.Port, Protocol: cd.Protocol, MTLS: cd.MTLS}, &out)
	return out, err
}

// ConduitList lists the conduits, sorted by their policy's name.
func (c *Client) ConduitList(ctx context.Context) ([]Conduit, error) {
	var out struct {
		Conduits []Conduit `json:"conduits"`
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/conduits", nil, &out)
	return out.Conduits, err
}

// ConduitCheck asks for a flow decision.
func (c *Client) ConduitCheck(ctx context.Context, req ConduitCheckRequest) (ConduitDecision, error) {
	var out ConduitDecision
	_, err := c.do(ctx, http.MethodPost, "/v1/conduits/check", req, &out)
	return out, err
}
