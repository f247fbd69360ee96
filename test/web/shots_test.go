//go:build e2e

package web_test

import (
	"bytes"
	"cmp"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// docShots are the screenshots the documentation shows (README.md, docs/dashboard.md). With
// AVIARY_DOCS_IMG set (to docs/img), the tests write them there too, in 256 colours: a page of
// flat colours loses nothing a reader sees, and the files stay small.
var docShots = map[string]bool{
	"overview": true, "overview-phone-dark": true, "rollout": true, "rollout-rolled-back": true,
	"flags": true, "experiments": true, "experiment": true, "experiment-srm": true,
}

// writeDocShot writes a documentation screenshot when AVIARY_DOCS_IMG asks for them.
func writeDocShot(name string, shot []byte) (string, error) {
	dir := os.Getenv("AVIARY_DOCS_IMG")
	if dir == "" || !docShots[name] {
		return "", nil
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return "", fmt.Errorf("read screenshot %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&b, paletted(img)); err != nil {
		return "", fmt.Errorf("encode screenshot %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".png")
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

// paletted maps img onto its 256 most frequent colours (each other colour to the nearest of
// them): a screenshot of a page is mostly flat colours, with antialiased edges between them.
func paletted(img image.Image) *image.Paletted {
	bounds := img.Bounds()
	rgba := image.NewRGBA(bounds)
	draw.Draw(rgba, bounds, img, bounds.Min, draw.Src)
	counts := map[color.RGBA]int{}
	for i := 0; i < len(rgba.Pix); i += 4 {
		counts[color.RGBA{rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2], 255}]++
	}
	colours := slices.SortedFunc(maps.Keys(counts), func(a, b color.RGBA) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(uint32(a.R)<<16|uint32(a.G)<<8|uint32(a.B), uint32(b.R)<<16|uint32(b.G)<<8|uint32(b.B))
	})
	pal := make(color.Palette, 0, 256)
	for _, c := range colours[:min(256, len(colours))] {
		pal = append(pal, c)
	}
	out := image.NewPaletted(bounds, pal)
	index := map[color.RGBA]uint8{}
	for i, j := 0, 0; i < len(rgba.Pix); i, j = i+4, j+1 {
		c := color.RGBA{rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2], 255}
		k, ok := index[c]
		if !ok {
			k = uint8(pal.Index(c))
			index[c] = k
		}
		out.Pix[j] = k
	}
	return out
}
