package main

// A glob is a Redis glob pattern compiled for matching many keys: *
// (any sequence, '/' included), ? (one byte), [abc], [^abc], [a-z] and \x
// (a literal x). A class without its closing ']' runs to the end of the
// pattern, as Redis has it.
//
// Matching costs O(len(tokens) * len(key)) steps, whatever the pattern:
// every token other than * is one byte set, tested in constant time (a
// class of any length is one 256-bit set), and the matcher backtracks to
// the last * only, never further, which is enough when every other token
// takes exactly one byte. Compiling costs O(len(pattern)), once per scan.
type glob struct {
	toks []globTok
	// fixed is the number of tokens other than *: a key shorter than that
	// cannot match, which bounds the work per key by about 2*len(key)^2
	// however long the pattern is.
	fixed int
}

type globTok struct {
	star bool
	set  [4]uint64 // the bytes this token matches, when not a star
}

func (t *globTok) has(c byte) bool { return t.set[c>>6]&(1<<(c&63)) != 0 }

func (t *globTok) add(c byte) { t.set[c>>6] |= 1 << (c & 63) }

// compileGlob compiles pattern p. Consecutive stars are merged.
func compileGlob(p string) *glob {
	g := &glob{}
	for i := 0; i < len(p); {
		var t globTok
		switch p[i] {
		case '*':
			i++
			if n := len(g.toks); n > 0 && g.toks[n-1].star {
				continue
			}
			t.star = true
		case '?':
			for c := 0; c < 256; c++ {
				t.add(byte(c))
			}
			i++
		case '[':
			i = compileClass(p, i, &t)
		case '\\':
			if i+1 < len(p) {
				t.add(p[i+1])
			}
			// A lone trailing backslash matches nothing.
			i += 2
		default:
			t.add(p[i])
			i++
		}
		if !t.star {
			g.fixed++
		}
		g.toks = append(g.toks, t)
	}
	return g
}

// compileClass fills t with the class starting at p[i] == '[' and returns
// the index after it.
func compileClass(p string, i int, t *globTok) int {
	i++
	neg := i < len(p) && p[i] == '^'
	if neg {
		i++
	}
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			t.add(p[i+1])
			i += 2
		case i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			for c := int(lo); c <= int(hi); c++ {
				t.add(byte(c))
			}
			i += 3
		default:
			t.add(p[i])
			i++
		}
	}
	if i < len(p) {
		i++ // the closing ']'
	}
	if neg {
		for k := range t.set {
			t.set[k] = ^t.set[k]
		}
	}
	return i
}

// match reports whether s matches the pattern, and the number of steps
// (token tests) it took, at most (len(g.toks)+1)*(len(s)+1).
func (g *glob) match(s string) (bool, int) {
	if g.fixed > len(s) {
		return false, 0
	}
	steps := 0
	ti, si := 0, 0
	starT, starS := -1, 0 // the last star seen, and where its match ends
	for si < len(s) {
		steps++
		if ti < len(g.toks) {
			t := &g.toks[ti]
			if t.star {
				starT, starS = ti, si
				ti++
				continue
			}
			if t.has(s[si]) {
				ti++
				si++
				continue
			}
		}
		if starT < 0 {
			return false, steps
		}
		// Let the last star take one byte more and retry what follows
		// it. Earlier stars never need to take more: every token after
		// them matches one byte, so whatever a longer match of an earlier
		// star allows, a longer match of the last one allows too.
		starS++
		ti, si = starT+1, starS
	}
	for ti < len(g.toks) && g.toks[ti].star {
		ti++
		steps++
	}
	return ti == len(g.toks), steps
}

// globMatch reports whether s matches the Redis glob pattern p.
func globMatch(p, s string) bool {
	ok, _ := compileGlob(p).match(s)
	return ok
}
