# Sourced by the study scripts (bench/neurons.sh, bench/neurons-joint.sh); needs $XTASK and log().
#
# tune_rate CFG RUN_DIR METHOD RATES DEV_LINES: sweeps METHOD's `train.lr` over RATES on the
# first DEV_LINES dev lines of each direction (CFG's run, in RUN_DIR), then writes the best rate
# into CFG: as the [train] rate for landermt (its first `lr =` line; later ones belong to
# [train.methods.*]), as a [train.methods.METHOD] section for any other method.
tune_rate() {
  local cfg=$1 dir=$2 method=$3 rates=$4 lines=$5 best
  "$XTASK" sweep --config "$cfg" --method "$method" --set "train.lr=$rates" --dev-lines "$lines" < /dev/null
  best=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['best'])" "$dir/sweep/$method/train.lr/sweep.json")
  if [ "$method" = landermt ]; then
    sed -i "0,/^lr = /s|^lr = .*|lr = $best               # the best of $rates on dev (sweep/landermt)|" "$cfg"
    grep -q "^lr = $best " "$cfg"
  else
    printf '\n[train.methods.%s]\nlr = %s               # the best of %s on dev (sweep/%s)\n' "$method" "$best" "$rates" "$method" >> "$cfg"
  fi
  log "$cfg: $method's rate is $best"
}
