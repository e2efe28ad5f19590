package shamir

// vectors are the shares of "warden" split 2-of-3 with the seeded stream of
// TestVectors. Each pair was also checked to recombine to "warden".
var vectors = []string{"57671d6718c2b1", "581251d0041b65", "e2a0a289c4006b"}
