package storage

import "strings"

// This is the encoding half of BIP 173 bech32, which age uses for its key
// strings. age keeps its own implementation internal, and deriving an identity
// from a passphrase needs to turn 32 raw bytes into an AGE-SECRET-KEY-1 string
// that age.ParseX25519Identity accepts; decoding is left to age.

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

var bech32Generator = [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}

// bech32Polymod is the BCH checksum over 5-bit values defined by BIP 173.
func bech32Polymod(values []byte) uint32 {
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i, g := range bech32Generator {
			if (top>>i)&1 == 1 {
				chk ^= g
			}
		}
	}
	return chk
}

// bech32HRPExpand spreads the human-readable part into the values the checksum covers.
func bech32HRPExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]&31)
	}
	return out
}

// bech32ConvertTo5 regroups bytes into 5-bit groups, padding the last group with zeros.
func bech32ConvertTo5(data []byte) []byte {
	out := make([]byte, 0, (len(data)*8+4)/5)
	var acc uint32
	var bits uint
	for _, b := range data {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(5-bits))&31)
	}
	return out
}

// bech32Encode encodes data under the human-readable part hrp. The checksum is
// computed over the lower-case form; upper reports whether the whole string is
// returned in upper case, as age writes its secret keys.
func bech32Encode(hrp string, data []byte, upper bool) string {
	hrp = strings.ToLower(hrp)
	values := bech32ConvertTo5(data)
	checked := append(bech32HRPExpand(hrp), values...)
	checked = append(checked, 0, 0, 0, 0, 0, 0)
	mod := bech32Polymod(checked) ^ 1

	var sb strings.Builder
	sb.Grow(len(hrp) + 1 + len(values) + 6)
	sb.WriteString(hrp)
	sb.WriteByte('1')
	for _, v := range values {
		sb.WriteByte(bech32Charset[v])
	}
	for i := range 6 {
		sb.WriteByte(bech32Charset[(mod>>(5*(5-i)))&31])
	}
	if upper {
		return strings.ToUpper(sb.String())
	}
	return sb.String()
}
