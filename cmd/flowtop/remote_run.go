//go:build !headless

package main

import (
	"context"
	"io"
	"time"

	"github.com/flowtop/flowtop/remote"
)

// runRemote runs the remote view: the screen, or with --once one JSON
// document (a node's, or the list of nodes).
func runRemote(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	log, warns := newLogger(o, stderr)
	cfg := o.remoteConfig()
	if o.once {
		return remoteOnce(ctx, o, cfg, stdout)
	}
	names := openNameSources(o, log)
	defer names.close()
	c, err := remote.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return remoteScreen(ctx, o, c, names.names, warns)
}

// remoteOnce prints the document of --mqtt-node, asked for with a
// request, or without a node the nodes seen within one interval.
func remoteOnce(ctx context.Context, o *options, cfg remote.Config, stdout io.Writer) error {
	if o.mqtt.node != "" {
		doc, err := remote.FetchOnce(ctx, cfg, o.mqtt.node, remote.DefaultOnceTimeout)
		if err != nil {
			return err
		}
		_, err = stdout.Write(doc)
		return err
	}
	nodes, err := remote.FetchNodes(ctx, cfg, o.intervalDuration())
	if err != nil {
		return err
	}
	doc, err := remote.Nodes(nodes, o.remote, cfg.Topic, time.Now()).JSON()
	if err != nil {
		return err
	}
	_, err = stdout.Write(doc)
	return err
}
