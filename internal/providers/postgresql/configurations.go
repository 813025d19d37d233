package postgresql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

const kindConfigurationPut = "postgresql.configuration.put"

// Names of the server parameters the data plane enforces.
const (
	ParamRequireSecureTransport = "require_secure_transport"
	ParamSSLMinProtocolVersion  = "ssl_min_protocol_version"
)

// Sources of a configuration's value, as Azure spells them.
const (
	SourceUserOverride  = "user-override"
	SourceSystemDefault = "system-default"
)

// Configuration is a server parameter as served (…/flexibleServers/{s}/configurations/{name}).
// Only user overrides are stored, as {id, name, type, properties: {value, source}}; the rest of
// the properties come from the catalogue when it is served.
type Configuration struct {
	ID         string                  `json:"id"`
	Name       string                  `json:"name"`
	Type       string                  `json:"type"`
	Properties ConfigurationProperties `json:"properties"`
}

// ConfigurationProperties are a server parameter's properties. Value and Source are the only
// ones a client writes.
type ConfigurationProperties struct {
	Value                  string `json:"value"`
	Source                 string `json:"source,omitempty"`
	Description            string `json:"description,omitempty"`
	DefaultValue           string `json:"defaultValue,omitempty"`
	DataType               string `json:"dataType,omitempty"`
	AllowedValues          string `json:"allowedValues,omitempty"`
	IsDynamicConfig        *bool  `json:"isDynamicConfig,omitempty"`
	IsReadOnly             *bool  `json:"isReadOnly,omitempty"`
	IsConfigPendingRestart *bool  `json:"isConfigPendingRestart,omitempty"`
	Unit                   string `json:"unit,omitempty"`
	DocumentationLink      string `json:"documentationLink,omitempty"`
}

// parameter is one entry of the catalogue of server parameters.
type parameter struct {
	name, description, defaultValue, dataType, allowed, unit string
	doc                                                      string // documentation link
	// norm returns the canonical spelling of a valid value, and false for an invalid one;
	// nil makes the parameter read-only: pglink serves its value but cannot apply a change.
	norm func(string) (string, bool)
}

// enum returns a norm that accepts the allowed values case-insensitively.
func enum(allowed ...string) func(string) (string, bool) {
	return func(v string) (string, bool) {
		for _, a := range allowed {
			if strings.EqualFold(strings.TrimSpace(v), a) {
				return a, true
			}
		}
		return "", false
	}
}

// boolean accepts on/off as PostgreSQL spells booleans (true/false, yes/no, 1/0 too).
func boolean(v string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "true", "yes", "1":
		return "on", true
	case "off", "false", "no", "0":
		return "off", true
	}
	return "", false
}

const pgDocs = "https://www.postgresql.org/docs/current/"

// catalogue lists the server parameters served, sorted by name. The two transport parameters
// are enforced by the gateway; the others are PostgreSQL's defaults, which the engine keeps,
// served read-only so that `az postgres flexible-server parameter list/show` have something
// true to show.
var catalogue = []parameter{
	{name: "idle_in_transaction_session_timeout", description: "Sets the maximum allowed idle time between queries, when in a transaction.",
		defaultValue: "0", dataType: "Integer", allowed: "0-2147483647", unit: "milliseconds",
		doc: pgDocs + "runtime-config-client.html#GUC-IDLE-IN-TRANSACTION-SESSION-TIMEOUT"},
	{name: "log_min_duration_statement", description: "Sets the minimum execution time above which statements will be logged.",
		defaultValue: "-1", dataType: "Integer", allowed: "-1-2147483647", unit: "milliseconds",
		doc: pgDocs + "runtime-config-logging.html#GUC-LOG-MIN-DURATION-STATEMENT"},
	{name: "password_encryption", description: "Chooses the algorithm for encrypting passwords.",
		defaultValue: "scram-sha-256", dataType: "Enumeration", allowed: "md5,scram-sha-256",
		doc: pgDocs + "runtime-config-connection.html#GUC-PASSWORD-ENCRYPTION"},
	{name: ParamRequireSecureTransport, description: "Whether client connections to the server are required to use some form of secure transport.",
		defaultValue: "on", dataType: "Boolean", allowed: "on,off", norm: boolean,
		doc: "https://learn.microsoft.com/azure/postgresql/flexible-server/concepts-networking-ssl-tls"},
	{name: ParamSSLMinProtocolVersion, description: "Sets the minimum SSL/TLS protocol version to use.",
		defaultValue: "TLSv1.2", dataType: "Enumeration", allowed: "TLSv1.2,TLSv1.3", norm: enum("TLSv1.2", "TLSv1.3"),
		doc: pgDocs + "runtime-config-connection.html#GUC-SSL-MIN-PROTOCOL-VERSION"},
	{name: "statement_timeout", description: "Sets the maximum allowed duration of any statement.",
		defaultValue: "0", dataType: "Integer", allowed: "0-2147483647", unit: "milliseconds",
		doc: pgDocs + "runtime-config-client.html#GUC-STATEMENT-TIMEOUT"},
	{name: "work_mem", description: "Sets the amount of memory to be used by internal sort operations and hash tables before writing to temporary disk files.",
		defaultValue: "4096", dataType: "Integer", allowed: "64-2147483647", unit: "KB",
		doc: pgDocs + "runtime-config-resource.html#GUC-WORK-MEM"},
}

// lookupParameter finds a catalogued parameter by name, case-insensitively.
func lookupParameter(name string) (parameter, bool) {
	for _, p := range catalogue {
		if strings.EqualFold(p.name, name) {
			return p, true
		}
	}
	return parameter{}, false
}

// render returns the parameter of server as served, with override (nil: none) applied.
func (p parameter) render(server resource.ID, override *Configuration) Configuration {
	id := server.Child("configurations", p.name)
	t, f := true, false
	readOnly := &f
	if p.norm == nil {
		readOnly = &t
	}
	c := Configuration{ID: id.String(), Name: p.name, Type: resource.TypeConfiguration, Properties: ConfigurationProperties{
		Value: p.defaultValue, Source: SourceSystemDefault, Description: p.description, DefaultValue: p.defaultValue,
		DataType: p.dataType, AllowedValues: p.allowed, IsDynamicConfig: &t, IsReadOnly: readOnly, IsConfigPendingRestart: &f,
		Unit: p.unit, DocumentationLink: p.doc,
	}}
	if override != nil {
		c.Properties.Value, c.Properties.Source = override.Properties.Value, SourceUserOverride
	}
	return c
}

// overrides returns the stored user overrides of server's parameters, by lower-cased name.
func overrides(ctx context.Context, tx store.Tx, server resource.ID) (map[string]*Configuration, error) {
	rs, err := tx.List(ctx, store.ListOptions{Parent: server.Key(), Type: resource.TypeConfiguration})
	if err != nil {
		return nil, fmt.Errorf("list configurations of %s: %w", server, err)
	}
	return decodeOverrides(rs)
}

// decodeOverrides returns the stored configurations rs of one server by lower-cased name.
func decodeOverrides(rs []store.Resource) (map[string]*Configuration, error) {
	out := make(map[string]*Configuration, len(rs))
	for _, r := range rs {
		var c Configuration
		if err := json.Unmarshal(r.Body, &c); err != nil {
			return nil, fmt.Errorf("decode %s: %w", r.ID, err)
		}
		out[strings.ToLower(c.Name)] = &c
	}
	return out, nil
}

// Transport is what the data plane enforces of a server's parameters.
type Transport struct {
	RequireSecure bool   // require_secure_transport: plaintext clients are refused
	MinTLS        string // ssl_min_protocol_version: "TLSv1.2" or "TLSv1.3"
}

// TransportOf reads server's transport parameters in tx: the user's overrides, else Azure's
// defaults (TLS required, TLS 1.2 or later).
func TransportOf(ctx context.Context, tx store.Tx, server resource.ID) (Transport, error) {
	ov, err := overrides(ctx, tx, server)
	if err != nil {
		return Transport{}, err
	}
	return transport(server, ov), nil
}

// TransportFrom is TransportOf from the server's stored configurations, read by the caller
// (for many servers at once).
func TransportFrom(server resource.ID, configurations []store.Resource) (Transport, error) {
	ov, err := decodeOverrides(configurations)
	if err != nil {
		return Transport{}, err
	}
	return transport(server, ov), nil
}

func transport(server resource.ID, ov map[string]*Configuration) Transport {
	value := func(name string) string {
		p, _ := lookupParameter(name)
		return p.render(server, ov[name]).Properties.Value
	}
	return Transport{RequireSecure: value(ParamRequireSecureTransport) == "on", MinTLS: value(ParamSSLMinProtocolVersion)}
}

func configurationNotExists(name string, s Server) error {
	return resource.Errorf(resource.NotFound, "ConfigurationNotExists",
		"The configuration '%s' does not exist for %s server version %s.", name, s.Name, s.Properties.Version)
}

func (p *Provider) serveConfiguration(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	t := req.Target
	switch {
	case t.Collection && req.Method == http.MethodGet:
		return p.listConfigurations(ctx, req)
	case t.Collection:
		return nil, arm.MethodNotAllowed(req)
	case req.Method == http.MethodGet:
		var body Configuration
		err := p.view(ctx, func(tx store.Tx) error {
			s, _, err := loadServer(ctx, tx, t.ID.Parent())
			if err != nil {
				return err
			}
			par, ok := lookupParameter(t.ID.Name())
			if !ok {
				return configurationNotExists(t.ID.Name(), s)
			}
			ov, err := overrides(ctx, tx, t.ID.Parent())
			if err != nil {
				return err
			}
			body = par.render(t.ID.Parent(), ov[strings.ToLower(par.name)])
			return nil
		})
		if err != nil {
			return nil, err
		}
		return &arm.Response{Body: body}, nil
	case req.Method == http.MethodPut || req.Method == http.MethodPatch:
		return p.putConfiguration(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req)
}

func (p *Provider) listConfigurations(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	server := req.Target.ID
	var ov map[string]*Configuration
	err := p.view(ctx, func(tx store.Tx) error {
		if _, _, err := loadServer(ctx, tx, server); err != nil {
			return err
		}
		var err error
		ov, err = overrides(ctx, tx, server)
		return err
	})
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(catalogue))
	for i, par := range catalogue {
		keys[i] = par.name
	}
	return req.PageKeys(keys, func(i int) (any, error) {
		return catalogue[i].render(server, ov[catalogue[i].name]), nil
	})
}

// configurationInput is what a configuration write keeps for its operation: the override to
// store, or nil to go back to the default.
type configurationInput struct {
	Override *Configuration `json:"override,omitempty"`
}

// putConfiguration serves PUT and PATCH (both long-running, as in Azure). The body's
// properties.value is the new value; source "system-default", or the default value, restores
// the default (source system-default again).
func (p *Provider) putConfiguration(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	var in Configuration
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	var (
		op  store.Operation
		out Configuration
	)
	err := p.st.Update(ctx, func(tx store.Tx) error {
		s, _, err := loadServer(ctx, tx, id.Parent())
		if err != nil {
			return err
		}
		par, ok := lookupParameter(id.Name())
		if !ok {
			return configurationNotExists(id.Name(), s)
		}
		var override *Configuration
		switch src := strings.ToLower(strings.TrimSpace(in.Properties.Source)); src {
		case strings.ToLower(SourceSystemDefault):
		case "", strings.ToLower(SourceUserOverride):
			if par.norm == nil {
				return resource.Errorf(resource.Invalid, "ConfigurationIsReadOnly",
					"The configuration '%s' of server '%s' cannot be changed in pglink; it serves PostgreSQL's default. Only %s and %s can be changed.",
					par.name, s.Name, ParamRequireSecureTransport, ParamSSLMinProtocolVersion)
			}
			v, ok := par.norm(in.Properties.Value)
			if !ok {
				return resource.InvalidParameter("value",
					"Invalid value given for parameter %s: '%s'. Specify one of the allowed values: %s.", par.name, in.Properties.Value, par.allowed)
			}
			if v == par.defaultValue {
				break // the default is not an override: az resets a parameter this way
			}
			override = &Configuration{ID: par.render(id.Parent(), nil).ID, Name: par.name, Type: resource.TypeConfiguration,
				Properties: ConfigurationProperties{Value: v, Source: SourceUserOverride}}
		default:
			return resource.InvalidParameter("source",
				"Invalid value given for parameter source: '%s'. Use %s or %s.", in.Properties.Source, SourceUserOverride, SourceSystemDefault)
		}
		ov, err := overrides(ctx, tx, id.Parent())
		if err != nil {
			return err
		}
		cur := ov[strings.ToLower(par.name)]
		out = par.render(id.Parent(), override)
		if (override == nil && cur == nil) || (override != nil && cur != nil && cur.Properties.Value == override.Properties.Value) {
			return nil // unchanged
		}
		cid := id.Parent().Child("configurations", par.name)
		goal := operation.Digest("put", out.Properties.Value, out.Properties.Source)
		if a, err := tx.ActiveOperation(ctx, cid.Key()); err == nil && a.Goal == goal {
			op = a // an identical retry joins the operation in flight
			return nil
		}
		if err := resource.RequireReady(s.Name, s.Properties.State, "change server parameters"); err != nil {
			return err
		}
		o, err := operation.BeginOn(ctx, tx, nodeOf(s), kindConfigurationPut, cid, s.Location, req.Method, goal, arm.OpMeta(req, ""),
			configurationInput{Override: override})
		if err != nil {
			return err
		}
		op = o
		s.Properties.State = resource.ServerUpdating
		_, err = arm.Save(ctx, tx, id.Parent(), s)
		return err
	})
	if err != nil {
		return nil, err
	}
	return arm.Written(0, out, op), nil
}

// runConfigurationPut stores (or removes) the override and makes the server Ready again; the
// data plane enforces the new value from that revision on.
func (p *Provider) runConfigurationPut(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id := resource.MustParse(op.ResourceID)
	var in configurationInput
	if err := json.Unmarshal(op.Data, &in); err != nil {
		return nil, fmt.Errorf("decode input: %w", err)
	}
	return func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.Get(ctx, id.Parent().Key()); errors.Is(err, store.ErrNotFound) {
			return nil // the server is gone, and its parameters with it
		} else if err != nil {
			return fmt.Errorf("read server %s: %w", id.Parent(), err)
		}
		if in.Override != nil {
			if _, err := arm.Save(ctx, tx, id, in.Override); err != nil {
				return err
			}
		} else if _, err := tx.Get(ctx, id.Key()); err == nil {
			if err := tx.Delete(ctx, id.Key()); err != nil {
				return fmt.Errorf("delete %s: %w", id, err)
			}
		}
		return setState(id.Parent(), resource.ServerReady, nil)(ctx, tx)
	}, nil
}
