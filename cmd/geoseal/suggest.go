package main

import "strings"

// didYouMean returns "; did you mean X?" when one of candidates is close
// to name (a typo away: an edit distance of at most a third of its length,
// and at least 1), or "" when none is.
func didYouMean(name string, candidates []string) string {
	if best, ok := nearest(name, candidates); ok {
		return "; did you mean " + best + "?"
	}
	return ""
}

// nearest returns the candidate closest to name by edit distance, ignoring
// case, if it is close enough to be a typo of it.
func nearest(name string, candidates []string) (string, bool) {
	if len(name) > maxSuggestLen {
		return "", false // not a typo; and the distance costs len(name) × len(candidate)
	}
	name = strings.ToLower(name)
	limit := max(1, len([]rune(name))/3)
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if d := editDistance(name, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, best != ""
}

const maxSuggestLen = 64

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
