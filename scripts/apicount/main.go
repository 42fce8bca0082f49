// Command apicount counts the exported identifiers of every package of the
// module, to keep the public surface in view when it changes:
//
//	go run ./scripts/apicount            # a table for the whole module
//	go run ./scripts/apicount ./envelope # some packages
//
// It counts what go doc shows a user: exported constants, variables,
// functions (constructors included), types, and the exported methods and
// struct fields of exported types. Test files are left out and build
// constraints are those of the running platform. The nested module
// internal/benchcmp and anything under testdata or node_modules are skipped.
package main

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// counts are the exported identifiers of one package, by kind.
type counts struct {
	consts, vars, funcs, types, methods, fields int
}

func (c counts) total() int {
	return c.consts + c.vars + c.funcs + c.types + c.methods + c.fields
}

func main() {
	log.SetFlags(0)
	dirs := os.Args[1:]
	if len(dirs) == 0 {
		var err error
		if dirs, err = moduleDirs("."); err != nil {
			log.Fatal(err)
		}
	}
	sort.Strings(dirs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "package\tconsts\tvars\tfuncs\ttypes\tmethods\tfields\ttotal\t")
	row := func(name string, c counts) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, c.consts, c.vars, c.funcs, c.types, c.methods, c.fields, c.total())
	}
	// Users see the public packages; internal ones count for the module's
	// own readers.
	var public, internal counts
	for _, dir := range dirs {
		c, ok, err := count(dir)
		if err != nil {
			log.Fatal(err)
		}
		if !ok {
			continue
		}
		name := filepath.ToSlash(filepath.Clean(dir))
		if slices.Contains(strings.Split(name, "/"), "internal") {
			internal.add(c)
		} else {
			public.add(c)
		}
		row(name, c)
	}
	row("(public packages)", public)
	row("(internal packages)", internal)
	tw.Flush()
}

func (c *counts) add(d counts) {
	c.consts += d.consts
	c.vars += d.vars
	c.funcs += d.funcs
	c.types += d.types
	c.methods += d.methods
	c.fields += d.fields
}

// moduleDirs returns every directory under root holding Go files, without
// nested modules, testdata and node_modules.
func moduleDirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		name := d.Name()
		if path != root && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".")) {
			return filepath.SkipDir
		}
		if path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module
			}
		}
		dirs = append(dirs, path)
		return nil
	})
	return dirs, err
}

// count returns the exported identifiers of the package in dir; ok is false
// when dir holds no (non-test) Go package for this platform, or a command.
func count(dir string) (c counts, ok bool, err error) {
	bp, err := build.ImportDir(dir, 0)
	if err != nil {
		if _, noGo := err.(*build.NoGoError); noGo {
			return c, false, nil
		}
		return c, false, err
	}
	if bp.Name == "main" {
		return c, false, nil // a command exports nothing
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range append(bp.GoFiles, bp.CgoFiles...) {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return c, false, err
		}
		files = append(files, f)
	}
	p, err := doc.NewFromFiles(fset, files, bp.ImportPath)
	if err != nil {
		return c, false, err
	}
	values := func(vs []*doc.Value) (n int) {
		for _, v := range vs {
			for _, spec := range v.Decl.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if id.IsExported() {
						n++
					}
				}
			}
		}
		return n
	}
	c.consts, c.vars, c.funcs = values(p.Consts), values(p.Vars), len(p.Funcs)
	for _, t := range p.Types {
		c.types++
		c.consts += values(t.Consts)
		c.vars += values(t.Vars)
		c.funcs += len(t.Funcs)
		c.methods += len(t.Methods)
		for _, spec := range t.Decl.Specs {
			st, isStruct := spec.(*ast.TypeSpec).Type.(*ast.StructType)
			if !isStruct {
				continue
			}
			for _, f := range st.Fields.List {
				for _, id := range f.Names {
					if id.IsExported() {
						c.fields++
					}
				}
				if len(f.Names) == 0 && ast.IsExported(embeddedName(f.Type)) {
					c.fields++
				}
			}
		}
	}
	return c, true, nil
}

// embeddedName returns the type name of an embedded field.
func embeddedName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return embeddedName(t.X)
	case *ast.SelectorExpr:
		return t.Sel.Name
	case *ast.Ident:
		return t.Name
	case *ast.IndexExpr:
		return embeddedName(t.X)
	}
	return ""
}
