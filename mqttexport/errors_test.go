package mqttexport

import (
	"errors"
	"fmt"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func TestNetworkCause(t *testing.T) {
	dial := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	paho := fmt.Errorf("%w : %w", packets.ErrorNetworkError, dial) // as paho v1.5 makes it
	if got := NetworkCause(paho); got != dial {
		t.Errorf("NetworkCause(%q) = %v, want %q", paho, got, dial)
	}
	refused := packets.ErrorRefusedBadUsernameOrPassword
	if got := NetworkCause(refused); got != refused {
		t.Errorf("a refused login became %v", got)
	}
	if got := NetworkCause(packets.ErrorNetworkError); got != packets.ErrorNetworkError {
		t.Errorf("a bare network error became %v", got)
	}
}
