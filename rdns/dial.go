package rdns

import (
	"context"
	"net"
)

// interruptible returns a resolver like r whose connections close when the
// lookup's context is cancelled. The Go resolver only applies the context's
// deadline to its socket, so without this Close would wait for every running
// lookup to time out.
func interruptible(r *net.Resolver) *net.Resolver {
	dial := r.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	return &net.Resolver{
		PreferGo:     r.PreferGo,
		StrictErrors: r.StrictErrors,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			conn, err := dial(ctx, network, address)
			if err != nil {
				return nil, err
			}
			sc := &stopConn{Conn: conn, stop: context.AfterFunc(ctx, func() { conn.Close() })}
			// The resolver frames messages for TCP unless the connection
			// is a PacketConn, so UDP must stay one.
			if pc, ok := conn.(net.PacketConn); ok {
				return &stopPacketConn{stopConn: sc, pc: pc}, nil
			}
			return sc, nil
		},
	}
}

// stopConn drops its close-on-cancel hook when closed normally.
type stopConn struct {
	net.Conn
	stop func() bool
}

func (c *stopConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// stopPacketConn is a stopConn that is still a net.PacketConn.
type stopPacketConn struct {
	*stopConn
	pc net.PacketConn
}

func (c *stopPacketConn) ReadFrom(b []byte) (int, net.Addr, error) { return c.pc.ReadFrom(b) }

func (c *stopPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.pc.WriteTo(b, addr) }
