import type { Command, Option } from 'commander';

/**
 * Shell completion scripts for bash, zsh and fish, generated from the
 * commander program itself, so a command or option added later completes
 * without touching this file. Completes command names (aliases too),
 * subcommands and options; arguments complete as file names.
 */

interface Node {
  path: string;
  words: string[];
  options: string[];
}

function flags(o: Option): string[] {
  return [o.short, o.long].filter((f): f is string => !!f);
}

function walk(cmd: Command, path: string[], globals: string[], out: Node[]): void {
  const kids = cmd.commands.filter((c) => c.name() !== 'help');
  out.push({
    path: path.join(' '),
    words: kids.flatMap((c) => [c.name(), ...c.aliases()]),
    options: [...cmd.options.flatMap(flags), ...globals, '--help'],
  });
  for (const k of kids) for (const n of [k.name(), ...k.aliases()]) walk(k, [...path, n], globals, out);
}

function nodes(program: Command): Node[] {
  const globals = program.options.flatMap(flags);
  const out: Node[] = [];
  walk(program, [], [], out);
  out[0]!.options = [...globals, '--help'];
  for (const n of out.slice(1)) n.options = [...new Set([...n.options, ...globals])];
  return out;
}

export function bashCompletion(program: Command): string {
  const cases = nodes(program)
    .map((n) => `    "${n.path}") words="${[...n.words, ...n.options].join(' ')}" ;;`)
    .join('\n');
  return `# berth completion for bash: source <(berth completion bash)
_berth() {
  local cur path="" w i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in
      -i|--instance) ((i++)) ;;
      -*) ;;
      *) case " $(_berth_words "$path") " in *" $w "*) path="\${path:+$path }$w" ;; esac ;;
    esac
  done
  COMPREPLY=($(compgen -W "$(_berth_words "$path")" -- "$cur"))
  [ \${#COMPREPLY[@]} -eq 0 ] && [[ "$cur" != -* ]] && COMPREPLY=($(compgen -f -- "$cur"))
  return 0
}
_berth_words() {
  local words=""
  case "$1" in
${cases}
  esac
  printf '%s' "$words"
}
complete -F _berth berth
`;
}

export function zshCompletion(program: Command): string {
  return `#compdef berth
# berth completion for zsh: source <(berth completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(program)}`;
}

export function fishCompletion(program: Command): string {
  const lines = ['# berth completion for fish: berth completion fish | source', 'complete -c berth -f'];
  for (const n of nodes(program)) {
    const parts = n.path ? n.path.split(' ') : [];
    const cond = parts.length ? `__fish_seen_subcommand_from ${parts[parts.length - 1]}` : '__fish_use_subcommand';
    const words = n.words.filter((w) => !parts.includes(w));
    if (words.length) lines.push(`complete -c berth -n '${cond}' -a '${words.join(' ')}'`);
    for (const o of n.options.filter((x) => x.startsWith('--'))) lines.push(`complete -c berth -n '${cond}' -l '${o.slice(2)}'`);
  }
  return lines.join('\n') + '\n';
}
