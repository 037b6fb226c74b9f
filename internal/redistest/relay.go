package redistest

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// Relay is a TCP relay in front of a Redis server that a test can cut off
// as a network fault would: Cut stops every byte in both directions without
// closing anything (no FIN, no RST: a client's reads just wait), and Heal
// closes every connection that was open during the cut, as a client finds
// its old connections dead when the network comes back, and forwards new
// ones again. A connection made during the cut is accepted but never
// answered.
type Relay struct {
	// Addr is where clients connect: 127.0.0.1:<port>.
	Addr   string
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex
	links  map[*link]struct{}
	healed chan struct{} // closed at Heal; nil while not cut
	closed bool
}

// link is one client connection and, unless it came during a cut, its
// connection to the server.
type link struct {
	client, server net.Conn
	// cut is set when the link was open during a cut: Heal closes it.
	cut bool
}

func (l *link) close() {
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
}

// StartRelay listens on a free loopback port and forwards to target
// (host:port). Close stops it.
func StartRelay(target string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{Addr: ln.Addr().String(), target: target, ln: ln, links: make(map[*link]struct{})}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// NewRelay starts a relay to target for test t, closed when t ends.
func NewRelay(t testing.TB, target string) *Relay {
	t.Helper()
	r, err := StartRelay(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// URL is a redis:// URL of database db through the relay.
func (r *Relay) URL(db int) string { return "redis://" + r.Addr + "/" + strconv.Itoa(db) }

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		l := &link{client: c}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			return
		}
		r.links[l] = struct{}{}
		if l.cut = r.healed != nil; l.cut {
			// The network is down: accepted (the kernel did that
			// already), never answered, closed at Heal.
			r.mu.Unlock()
			continue
		}
		r.mu.Unlock()
		r.wg.Add(1)
		go r.serve(l)
	}
}

// serve connects l to the server and pumps both ways until either side
// ends, or until Heal closes it.
func (r *Relay) serve(l *link) {
	defer r.wg.Done()
	s, err := net.Dial("tcp", r.target)
	r.mu.Lock()
	if err != nil || r.closed || l.cut {
		// Closed, or cut while dialling: a connection that never got
		// through.
		r.mu.Unlock()
		if s != nil {
			s.Close()
		}
		if err != nil || r.closed {
			r.drop(l)
		}
		return
	}
	l.server = s
	r.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { r.pump(l.server, l.client); done <- struct{}{} }()
	go func() { r.pump(l.client, l.server); done <- struct{}{} }()
	<-done
	r.drop(l)
	<-done
}

// pump copies src to dst. While the relay is cut nothing passes and
// nothing is closed, not even a connection its client gave up on: the pump
// waits for Heal, which closes the link.
func (r *Relay) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if healed := r.cutSignal(); healed != nil {
			<-healed
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cutSignal is the channel Heal closes, or nil while the relay forwards.
func (r *Relay) cutSignal() chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.healed
}

// drop closes l and forgets it.
func (r *Relay) drop(l *link) {
	r.mu.Lock()
	delete(r.links, l)
	r.mu.Unlock()
	l.close()
}

// Cut stops forwarding: from now on no byte passes in either direction
// and nothing is closed, until Heal. Cutting a cut relay does nothing.
func (r *Relay) Cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.healed != nil {
		return
	}
	r.healed = make(chan struct{})
	for l := range r.links {
		l.cut = true
	}
}

// Heal ends a cut: every connection open during it is closed, and new
// ones are forwarded again. It returns how many it closed.
func (r *Relay) Heal() int {
	r.mu.Lock()
	if r.healed == nil {
		r.mu.Unlock()
		return 0
	}
	var dead []*link
	for l := range r.links {
		if l.cut {
			dead = append(dead, l)
			delete(r.links, l)
		}
	}
	close(r.healed)
	r.healed = nil
	r.mu.Unlock()
	for _, l := range dead {
		l.close()
	}
	return len(dead)
}

// Links is how many client connections the relay holds open.
func (r *Relay) Links() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.links)
}

// Close stops the relay and closes every connection.
func (r *Relay) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	links := r.links
	r.links = nil
	healed := r.healed
	r.healed = nil
	r.mu.Unlock()
	if healed != nil {
		close(healed)
	}
	r.ln.Close()
	for l := range links {
		l.close()
	}
	r.wg.Wait()
}
