package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

const completionHelp = `Usage:

	geoseal completion bash|zsh|fish

completion prints a script that completes geoseal's commands, subcommands
and flags (and file names where a flag or argument takes one) in the shell
named. Load it from the shell's startup file:

	bash:  source <(geoseal completion bash)            (~/.bashrc)
	zsh:   source <(geoseal completion zsh)             (~/.zshrc, after compinit)
	fish:  geoseal completion fish | source             (~/.config/fish/config.fish)

The script is made from the command table of the binary that prints it, so
it matches that binary's flags.

Exit status: 0, or 1 for a shell it does not know.
`

// completionCmd is `geoseal completion SHELL`.
type completionCmd struct{}

func (c *completionCmd) flags(*flag.FlagSet) {}

func (c *completionCmd) run(ctx context.Context, env *environment, args []string) error {
	if len(args) != 1 {
		return usageErrorf("completion takes one shell: bash, zsh or fish")
	}
	cmds := completionTable()
	switch args[0] {
	case "bash":
		return writeBash(env.stdout, cmds)
	case "zsh":
		return writeZsh(env.stdout, cmds)
	case "fish":
		return writeFish(env.stdout, cmds)
	}
	return usageErrorf("unknown shell %s (want bash, zsh or fish)%s", quoteUntrusted(args[0]), didYouMean(args[0], []string{"bash", "zsh", "fish"}))
}

// A completable is a command as the completion scripts see it.
type completable struct {
	path    []string // ["region", "check"]
	summary string
	flags   []completableFlag
	subs    []string // subcommand names, for a group
}

type completableFlag struct {
	name, usage string
	takesValue  bool
}

// completionTable lists every command and group of the command table,
// with the flags each defines and those every command takes.
func completionTable() []completable {
	var out []completable
	var walk func(prefix []string, cs []command)
	walk = func(prefix []string, cs []command) {
		for _, c := range cs {
			path := append(slices.Clone(prefix), c.name)
			e := completable{path: path, summary: c.summary}
			if c.new != nil {
				fs := flag.NewFlagSet("", flag.ContinueOnError)
				c.new().flags(fs)
				new(commonFlags).register(fs)
				fs.VisitAll(func(f *flag.Flag) {
					b, isBool := f.Value.(interface{ IsBoolFlag() bool })
					e.flags = append(e.flags, completableFlag{f.Name, f.Usage, !(isBool && b.IsBoolFlag())})
				})
			}
			for _, s := range c.subcommands {
				e.subs = append(e.subs, s.name)
			}
			out = append(out, e)
			walk(path, c.subcommands)
		}
	}
	walk(nil, commands)
	out = append(out, completable{path: []string{"help"}, summary: "show a command's help"})
	return out
}

// topNames are the first words geoseal takes.
func topNames(cmds []completable) []string {
	var names []string
	for _, c := range cmds {
		if len(c.path) == 1 {
			names = append(names, c.path[0])
		}
	}
	return names
}

func writeBash(w io.Writer, cmds []completable) error {
	var groups []string
	for _, c := range cmds {
		if c.subs != nil {
			groups = append(groups, strings.Join(c.path, " "))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# bash completion for geoseal: source <(geoseal completion bash)
_geoseal() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local groups=%q path="" i w
    # The command is the first word that is not a flag; a group's
    # subcommand, the next one.
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        [[ $w == -* ]] && continue
        if [[ -z $path ]]; then
            path=$w
        else
            path="$path $w"
        fi
        [[ " $groups " == *" $path "* ]] || break
    done
    local words="" flags="" valued=""
    case "$path" in
`, strings.Join(groups, " "))
	fmt.Fprintf(&b, "    \"\"|help) words=%q ;;\n", strings.Join(topNames(cmds), " "))
	for _, c := range cmds {
		var flags, valued []string
		for _, f := range c.flags {
			flags = append(flags, "--"+f.name)
			if f.takesValue {
				valued = append(valued, "--"+f.name)
			}
		}
		words := strings.Join(c.subs, " ")
		if strings.Join(c.path, " ") == "completion" {
			words = "bash zsh fish"
		}
		fmt.Fprintf(&b, "    %q) words=%q flags=%q valued=%q ;;\n", strings.Join(c.path, " "), words, strings.Join(flags, " "), strings.Join(valued, " "))
	}
	b.WriteString(`    esac
    if [[ " $valued " == *" $prev "* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif [[ -n $words ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o default -F _geoseal geoseal
`)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeZsh(w io.Writer, cmds []completable) error {
	var b strings.Builder
	b.WriteString(`#compdef geoseal
# zsh completion for geoseal: source <(geoseal completion zsh), after compinit
_geoseal() {
    local -a cmds
    cmds=(
`)
	for _, c := range cmds {
		if len(c.path) == 1 {
			fmt.Fprintf(&b, "        %s\n", zshQuote(c.path[0]+":"+c.summary))
		}
	}
	b.WriteString(`    )
    local cmd=${words[2]}
    if (( CURRENT == 2 )); then
        _describe -t commands 'geoseal command' cmds
        return
    fi
    if [[ $cmd == help ]]; then
        _describe -t commands 'geoseal command' cmds
        return
    fi
    local -a subs
    case $cmd in
`)
	for _, c := range cmds {
		if c.subs == nil {
			continue
		}
		fmt.Fprintf(&b, "    %s)\n        if (( CURRENT == 3 )); then\n            subs=(", c.path[0])
		for _, s := range c.subs {
			b.WriteString(" " + zshQuote(s))
		}
		b.WriteString(" )\n            _describe -t commands 'subcommand' subs\n            return\n        fi\n        cmd=\"$cmd ${words[3]}\"\n        ;;\n")
	}
	b.WriteString(`    esac
    # _arguments counts positions from words[1], the command itself.
    local n=1
    [[ $cmd == *' '* ]] && n=2
    shift $n words
    (( CURRENT -= n ))
    case $cmd in
`)
	for _, c := range cmds {
		if c.flags == nil && strings.Join(c.path, " ") != "completion" {
			continue
		}
		fmt.Fprintf(&b, "    %s)\n        _arguments -S \\\n", zshQuote(strings.Join(c.path, " ")))
		for _, f := range c.flags {
			spec := "--" + f.name + "[" + zshBracket(f.usage) + "]"
			if f.takesValue {
				spec += ":" + f.name + ":_files"
			}
			fmt.Fprintf(&b, "            %s \\\n", zshQuote(spec))
		}
		if strings.Join(c.path, " ") == "completion" {
			b.WriteString("            '1:shell:(bash zsh fish)'\n")
		} else {
			b.WriteString("            '*:file:_files'\n")
		}
		b.WriteString("        ;;\n")
	}
	b.WriteString(`    esac
}
compdef _geoseal geoseal
`)
	_, err := io.WriteString(w, b.String())
	return err
}

// zshQuote quotes s for zsh in single quotes.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zshBracket escapes what ends an _arguments description.
func zshBracket(s string) string {
	return strings.NewReplacer("[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

func writeFish(w io.Writer, cmds []completable) error {
	var b strings.Builder
	b.WriteString("# fish completion for geoseal: geoseal completion fish | source\ncomplete -c geoseal -f\n")
	top := strings.Join(topNames(cmds), " ")
	for _, c := range cmds {
		switch len(c.path) {
		case 1:
			fmt.Fprintf(&b, "complete -c geoseal -n 'not __fish_seen_subcommand_from %s' -a %s -d %s\n", top, fishQuote(c.path[0]), fishQuote(c.summary))
		case 2:
			parent := ""
			for _, p := range cmds {
				if len(p.path) == 1 && p.path[0] == c.path[0] {
					parent = strings.Join(p.subs, " ")
				}
			}
			fmt.Fprintf(&b, "complete -c geoseal -n '__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from %s' -a %s -d %s\n",
				c.path[0], parent, fishQuote(c.path[1]), fishQuote(c.summary))
		}
		cond := "__fish_seen_subcommand_from " + c.path[0]
		if len(c.path) == 2 {
			cond += "; and __fish_seen_subcommand_from " + c.path[1]
		}
		for _, f := range c.flags {
			fmt.Fprintf(&b, "complete -c geoseal -n %s -l %s", fishQuote(cond), f.name)
			if f.takesValue {
				b.WriteString(" -r -F")
			}
			fmt.Fprintf(&b, " -d %s\n", fishQuote(f.usage))
		}
		switch strings.Join(c.path, " ") {
		case "completion":
			fmt.Fprintf(&b, "complete -c geoseal -n %s -a 'bash zsh fish'\n", fishQuote(cond))
		case "help":
			fmt.Fprintf(&b, "complete -c geoseal -n %s -a %s\n", fishQuote(cond), fishQuote(top))
		default:
			if c.flags != nil {
				fmt.Fprintf(&b, "complete -c geoseal -n %s -F\n", fishQuote(cond))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fishQuote quotes s for fish in single quotes.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}
