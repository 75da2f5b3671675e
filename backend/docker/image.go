package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/cutover/deploy"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// BinaryPath is where BuildBinaryImage puts the binary in the image.
const BinaryPath = "/app"

// ImageOptions configures an image made by ImportImage, BuildBinaryImage or
// BuildGoImage. The zero value is valid.
type ImageOptions struct {
	// Cmd is the image's default command. Default: [BinaryPath] for
	// BuildBinaryImage and BuildGoImage, none for ImportImage.
	Cmd []string
	// Entrypoint is the image's entrypoint. Default: none, so a machine's
	// spec.Cmd replaces the whole command.
	Entrypoint []string
	// Port is exposed (EXPOSE <port>/tcp). Default DefaultPort; -1 exposes none.
	Port int
	// Env is the image's environment.
	Env map[string]string
	// Labels are the image's labels.
	Labels map[string]string
	// Message is the commit message of the imported layer.
	Message string
}

// changes renders the options as Dockerfile instructions for ImageImport.
func (o ImageOptions) changes(defaultCmd []string) ([]string, error) {
	var out []string
	cmd := o.Cmd
	if cmd == nil {
		cmd = defaultCmd
	}
	if len(cmd) > 0 {
		js, err := json.Marshal(cmd)
		if err != nil {
			return nil, err
		}
		out = append(out, "CMD "+string(js))
	}
	if len(o.Entrypoint) > 0 {
		js, err := json.Marshal(o.Entrypoint)
		if err != nil {
			return nil, err
		}
		out = append(out, "ENTRYPOINT "+string(js))
	}
	port := o.Port
	if port == 0 {
		port = DefaultPort
	}
	if port > 0 {
		if port > 65535 {
			return nil, fmt.Errorf("port %d out of range", port)
		}
		out = append(out, "EXPOSE "+strconv.Itoa(port)+"/tcp")
	}
	for _, k := range slices.Sorted(maps.Keys(o.Env)) {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return nil, fmt.Errorf("env key %q", k)
		}
		out = append(out, "ENV "+k+"="+dockerfileQuote(o.Env[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(o.Labels)) {
		out = append(out, "LABEL "+dockerfileQuote(k)+"="+dockerfileQuote(o.Labels[k]))
	}
	return out, nil
}

// ImportImage creates the image named image (such as "myapp:v1") from a tar
// of a root filesystem, with no registry. It reads the engine's progress
// stream to the end and returns the errors reported inside it.
func (b *Backend) ImportImage(ctx context.Context, image string, rootfs io.Reader, opts ImageOptions) error {
	return b.importImage(ctx, image, rootfs, opts, nil)
}

func (b *Backend) importImage(ctx context.Context, image string, rootfs io.Reader, opts ImageOptions, defaultCmd []string) error {
	if image == "" {
		return fmt.Errorf("docker: import image: %w: empty image name", deploy.ErrInvalid)
	}
	changes, err := opts.changes(defaultCmd)
	if err != nil {
		return fmt.Errorf("docker: import image %s: %w: %w", image, deploy.ErrInvalid, err)
	}
	rc, err := b.cli.ImageImport(ctx, client.ImageImportSource{Source: rootfs, SourceName: "-"}, image,
		client.ImageImportOptions{Changes: changes, Message: opts.Message})
	if err != nil {
		return wrapErr("import image "+image, "", err)
	}
	defer rc.Close()
	if err := readJSONStream(rc); err != nil {
		return fmt.Errorf("docker: import image %s: %w", image, err)
	}
	return nil
}

// readJSONStream reads an engine progress stream to its end and returns the
// first error reported in it.
func readJSONStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			jsonstream.Message
			ErrorMessage string `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading progress stream: %w", err)
		}
		switch {
		case msg.Error != nil && msg.Error.Message != "":
			return errors.New(msg.Error.Message)
		case msg.ErrorMessage != "":
			return errors.New(msg.ErrorMessage)
		}
	}
}

// BinaryTar writes a tar holding one executable file at BinaryPath, plus an
// empty /tmp, read from binaryPath. The binary should be static (CGO_ENABLED=0).
func BinaryTar(w io.Writer, binaryPath string) error {
	f, err := os.Open(binaryPath)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", binaryPath)
	}
	tw := tar.NewWriter(w)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: now}); err != nil {
		return err
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(BinaryPath, "/"),
		Mode:     0o755,
		Size:     fi.Size(),
		ModTime:  now,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return err
	}
	return tw.Close()
}

// BuildBinaryImage makes the image named image from one static binary: the
// binary sits at BinaryPath and is the default command (opts.Cmd overrides).
func (b *Backend) BuildBinaryImage(ctx context.Context, image, binaryPath string, opts ImageOptions) error {
	var buf bytes.Buffer
	if err := BinaryTar(&buf, binaryPath); err != nil {
		return fmt.Errorf("docker: build image %s: %w", image, err)
	}
	return b.importImage(ctx, image, &buf, opts, []string{BinaryPath})
}

// BuildGoImage compiles the Go main package in pkgDir to a static Linux binary
// (CGO_ENABLED=0, for the engine's architecture) and makes the image named
// image from it with BuildBinaryImage. It needs the go command.
func (b *Backend) BuildGoImage(ctx context.Context, image, pkgDir string, opts ImageOptions) error {
	dir, err := os.MkdirTemp("", "cutover-gobuild-")
	if err != nil {
		return fmt.Errorf("docker: build image %s: %w", image, err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "app")
	if err := b.goBuild(ctx, pkgDir, bin); err != nil {
		return fmt.Errorf("docker: build image %s: %w", image, err)
	}
	return b.BuildBinaryImage(ctx, image, bin, opts)
}

func (b *Backend) goBuild(ctx context.Context, pkgDir, out string) error {
	arch := ""
	if v, err := b.cli.ServerVersion(ctx, client.ServerVersionOptions{}); err == nil {
		arch = v.Arch
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if arch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+arch)
	}
	if outb, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", pkgDir, err, outb)
	}
	return nil
}

// RemoveImage removes the image (forcibly). A missing image is not an error.
func (b *Backend) RemoveImage(ctx context.Context, image string) error {
	_, err := b.cli.ImageRemove(ctx, image, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return wrapErr("remove image "+image, "", err)
	}
	return nil
}

// dockerfileQuote double-quotes s for an ENV or LABEL instruction.
func dockerfileQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "$", `\$`)
	return `"` + r.Replace(s) + `"`
}
