package main

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/flowtop/flowtop/remote"
	"github.com/flowtop/flowtop/report"
)

// The remote view (--remote URL) reads what routers publish to a broker:
// it needs no privilege and no kernel, and runs on any system.

// allNodes is --mqtt-node's value for every node in one table.
const allNodes = "+"

// remoteFlags are the flags that mean something to the remote view: the
// broker's login, TLS and topic, the node, the screen's own settings and
// the laptop's name lookups. Any other (a table filter, an export, the
// kernel's options) is a usage error with --remote, not silently ignored.
var remoteFlags = map[string]bool{
	"remote": true, "mqtt-user": true, "mqtt-password-file": true, "mqtt-ca": true, "mqtt-cert": true,
	"mqtt-key": true, "mqtt-client-id": true, "mqtt-topic": true, "mqtt-node": true, "mqtt-qos": true,
	"interval": true, "once": true, "sort": true, "limit": true, "no-dns": true, "no-geoip": true,
	"show-src": true, "bits": true, "config-dir": true, "geoip-dir": true, "version": true, "help": true,
}

// checkRemote checks the options of --remote; its errors are usage
// errors.
func (o *options) checkRemote() error {
	if o.given["remote"] && o.remote == "" {
		return errors.New(`--remote "": want a broker URL`)
	}
	for _, name := range slices.Sorted(maps.Keys(o.given)) {
		if !remoteFlags[name] {
			return fmt.Errorf("--%s makes no sense with --remote, which shows what the routers publish (filter and export on the router)", name)
		}
	}
	if err := checkBrokerURL("--remote", o.remote); err != nil {
		return err
	}
	if strings.ContainsAny(o.mqtt.topic, "+#") {
		return fmt.Errorf("--mqtt-topic %q: an MQTT wildcard (+ or #) cannot be part of a topic", o.mqtt.topic)
	}
	node := o.mqtt.node
	if o.given["mqtt-node"] && node == "" {
		return errors.New(`--mqtt-node "": want a node name, or + for every node`)
	}
	if o.once && node == allNodes {
		return errors.New("--mqtt-node + with --once: name one node, or leave --mqtt-node out for the list of nodes")
	}
	if node != "" && node != allNodes {
		if err := remote.CheckNode(node); err != nil {
			return fmt.Errorf("--mqtt-node: %w", err)
		}
	}
	if o.mqtt.qos < 0 || o.mqtt.qos > 2 {
		return fmt.Errorf("--mqtt-qos %d: want 0, 1 or 2", o.mqtt.qos)
	}
	if o.once && !o.given["interval"] {
		// The node list waits one interval for documents: at 1 s most
		// routers, publishing every minute, would show only their status.
		o.interval = 2
	}
	return nil
}

// remoteConfig is the broker side of the remote view: the --mqtt-* login,
// TLS and topic options, the screen's interval, sort and --limit.
func (o *options) remoteConfig() remote.Config {
	cfg := remote.Config{
		URL: o.remote, User: o.mqtt.user, PasswordFile: o.mqtt.passwordFile,
		CA: o.mqtt.ca, Cert: o.mqtt.cert, Key: o.mqtt.key,
		ClientID: o.mqtt.clientID, Topic: o.mqtt.topic, QoS: byte(o.mqtt.qos),
		// The reader's own log lines would repeat what it reports: the
		// screen shows the broker's and each node's last problem in its
		// header, --once returns it as its one line.
		Logger:   slog.New(slog.DiscardHandler),
		Interval: o.intervalDuration(),
		Limit:    o.limit,
		Sort:     o.sortKey,
	}
	if !o.given["sort"] {
		cfg.Sort = report.SortRate // what the screen opens sorted by
	}
	return cfg
}
