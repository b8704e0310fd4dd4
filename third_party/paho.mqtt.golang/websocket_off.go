//go:build paho_nowebsocket || headless

/*
 * This program and the accompanying materials
 * are made available under the terms of the Eclipse Public License v2.0
 * and Eclipse Distribution License v1.0 which accompany this distribution.
 *
 * The Eclipse Public License is available at
 *    https://www.eclipse.org/legal/epl-2.0/
 * and the Eclipse Distribution License is available at
 *   http://www.eclipse.org/org/documents/edl-v10.php.
 *
 * Contributors:
 *    flowtop: build tag paho_nowebsocket (see FORK.md)
 */

package mqtt

import (
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// ErrNoWebsocket is what dialling a ws:// or wss:// broker returns in a
// build with the tag paho_nowebsocket (or flowtop's headless).
var ErrNoWebsocket = errors.New("websockets (ws://, wss://) are left out of this build (tag paho_nowebsocket): use tcp:// or ssl://")

// WebsocketOptions are config options for a websocket dialer; in this build
// nothing reads them.
type WebsocketOptions struct {
	ReadBufferSize  int
	WriteBufferSize int
}

// NewWebsocket fails: this build has no websockets, and so links neither
// gorilla/websocket nor net/http.
func NewWebsocket(host string, tlsc *tls.Config, timeout time.Duration, requestHeader map[string][]string, options *WebsocketOptions) (net.Conn, error) {
	return nil, ErrNoWebsocket
}
