# bash completion for marketctl (installed by `make install` as
# PREFIX/share/bash-completion/completions/marketctl).
# Completes the subcommands, the options each one takes, the object kinds of
# `get`, order statuses, and directories for --data-dir and --out.
# Keep in step with tools/marketctl.c (tests/unit/man_completion.sh checks
# that every subcommand in the usage text is offered here).

_marketctl_subcommands="events export verify stats get orders audit sales summary rebuild replay backup outbox"
# Without --data-dir (signed checkpoints, docs/audit.md).
_marketctl_checkpoint_subcommands="keygen checkpoints verify-export"

# _marketctl_options SUBCOMMAND: the options SUBCOMMAND takes.
_marketctl_options()
{
    case $1 in
        events) echo "--stream --from --to --since --until --limit --follow --format" ;;
        export) echo "--stream --from --to --since --until --limit" ;;
        verify) echo "--checkpoints --keys" ;;
        stats | rebuild) echo "" ;;
        get) echo "--as-of --min-seq --wait-ms --format" ;;
        orders) echo "--buyer --provider --status --day --limit --cursor --min-seq --wait-ms --format" ;;
        audit) echo "--subject --actor --follow --limit --cursor --min-seq --wait-ms --format" ;;
        sales) echo "--provider --from --to --limit --cursor --min-seq --wait-ms --format" ;;
        summary) echo "--from --to --provider --top --min-seq --wait-ms --format" ;;
        replay) echo "--until --as-of --out" ;;
        backup) echo "--out --new-identity" ;;
        outbox) echo "--id" ;;
        keygen) echo "--id --out" ;;
        checkpoints) echo "--bootstrap --topic" ;;
        verify-export) echo "--checkpoints --keys" ;;
    esac
}

_marketctl()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=""
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()

    case $prev in
        --data-dir | --out | --keys)
            COMPREPLY=($(compgen -d -- "$cur"))
            return 0
            ;;
        --checkpoints)
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
            ;;
        --status)
            COMPREPLY=($(compgen -W "placed paid delivered completed cancelled closed refunded partially_refunded" -- "$cur"))
            return 0
            ;;
        --format)
            COMPREPLY=($(compgen -W "json csv table" -- "$cur"))
            return 0
            ;;
        --stream | --from | --to | --limit | --cursor | --buyer | --provider | --day | \
            --subject | --actor | --until | --as-of | --id | --bootstrap | --topic | --since | --top | \
            --min-seq | --wait-ms)
            return 0 # a value: nothing to offer
            ;;
    esac

    # The subcommand: the first word that is neither an option nor an
    # option's value.
    local i sub="" nargs=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --data-dir | --stream | --from | --to | --limit | --cursor | --buyer | --provider | \
                --day | --subject | --actor | --until | --as-of | --out | --status | \
                --checkpoints | --keys | --id | --bootstrap | --topic | --since | --top | --format | \
                --min-seq | --wait-ms)
                ((i++)) ;;
            -*) ;;
            *)
                if [[ -z $sub ]]; then sub=${COMP_WORDS[i]}; else nargs=$((nargs + 1)); fi
                ;;
        esac
    done

    if [[ -z $sub ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--data-dir --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$_marketctl_subcommands $_marketctl_checkpoint_subcommands" -- "$cur"))
        fi
        return 0
    fi
    if [[ $sub == get && $nargs == 0 && $cur != -* ]]; then
        COMPREPLY=($(compgen -W "order account store product complaint sanction voucher" -- "$cur"))
        return 0
    fi
    if [[ $sub == verify-export && $nargs == 0 && $cur != -* ]]; then
        COMPREPLY=($(compgen -f -- "$cur")) # the export file
        return 0
    fi
    if [[ $cur == -* ]]; then
        local extra=--data-dir
        [[ " $_marketctl_checkpoint_subcommands " == *" $sub "* ]] && extra=""
        COMPREPLY=($(compgen -W "$(_marketctl_options "$sub") $extra" -- "$cur"))
    fi
    return 0
}

complete -F _marketctl marketctl
