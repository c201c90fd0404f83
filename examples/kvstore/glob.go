package main

// globMatch reports whether s matches the Redis glob pattern p: * (any
// sequence, '/' included), ? (one byte), [abc], [^abc], [a-z] and \x (a
// literal x). A malformed class (no closing ']') matches its characters
// literally up to the end of the pattern, as Redis does. Stars are matched
// by backtracking to the last star only, so the cost is O(len(p)*len(s)).
func globMatch(p, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				starP, starS = pi, si
				pi++
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if ok, next := matchClass(p, pi, s[si]); ok {
					pi, si = next, si+1
					continue
				}
			case '\\':
				if pi+1 < len(p) && p[pi+1] == s[si] {
					pi, si = pi+2, si+1
					continue
				}
			default:
				if p[pi] == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches c against the class starting at p[i] == '[' and
// returns whether it matched and the index after the class.
func matchClass(p string, i int, c byte) (bool, int) {
	i++
	neg := i < len(p) && p[i] == '^'
	if neg {
		i++
	}
	matched := false
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			matched = matched || p[i+1] == c
			i += 2
		case i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			matched = matched || (c >= lo && c <= hi)
			i += 3
		default:
			matched = matched || p[i] == c
			i++
		}
	}
	if i < len(p) {
		i++ // the closing ']'
	}
	return matched != neg, i
}
