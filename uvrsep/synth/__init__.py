"""Seeded, procedural vocal/accompaniment training set built from musical components.

    python scripts/make_dataset.py OUT --tracks 200 --test-tracks 20 --seconds 20 --seed 0 \
        --jobs 16 [--sample-rate 44100] [--subtype FLOAT|PCM_16] [--instrumental-fraction 0.1]

writes MUSDB-style track folders ``OUT/train/track_0000/{mixture,vocals,accompaniment}.wav`` and
``OUT/test/track_0000/...`` (stereo; float32 WAV by default, so that ``mixture == vocals +
accompaniment`` exactly) and ``OUT/recipe.json`` (arguments, generator version, backends and the
musical facts of every track). Everything is pure numpy/scipy; no data files, no network. Track
``i`` of a split is seeded from ``SeedSequence(seed, spawn_key=(split, i))``: the same ``--seed``
gives byte-identical files whatever ``--jobs`` is, and the test split (split 1) draws from a
stream disjoint from the training split (split 0).

Recipe of one track (every number is a named constant of the modules)
---------------------------------------------------------------------
*Harmony*: a random tonic and mode (major/natural minor), tempo 70-160 BPM, a four-chord
progression from a small set of common ones (I-V-vi-IV, vi-IV-I-V, i-VI-III-VII, ...), one chord
per bar (two per bar at slow tempi, one per two bars at fast ones); the excerpt starts at a
random point of the bar.

*Accompaniment* (``accompaniment.wav``), parts panned with constant-power panning and random
gains:

- drums (absent in ~15 % of tracks; sometimes they enter after an intro): kick = sine with an
  exponential pitch sweep plus a click, soft-saturated; snare = two decaying tones plus band-passed
  noise (or a hand clap of noise bursts); hi-hats/ride/crash = band-passed noise and 808-style
  metallic square clusters; toms = swept sines. Sixteen-step patterns (rock, pop, four on the
  floor, half time, hip-hop with swing, shuffle) with random kicks, ghost notes, open hats,
  fills at phrase ends and a crash after them; every hit is humanised in time and velocity and
  drawn from several "round-robin" variants;
- bass following the chord roots (roots, eighths, root-fifth, syncopated, walking lines) played
  by a band-limited saw/square with a filter-brightness envelope, a Karplus-Strong pluck or a
  fingered (decaying harmonic) bass;
- one or two chord instruments among: additive piano (inharmonic partials, per-partial decays,
  hammer strike position, hammer noise), drawbar organ with tremolo and key click, string/synth
  pad (three detuned band-limited saws, slow attack, vibrato) and Karplus-Strong guitar (strums
  with per-string delays, down/up patterns, palm mutes, or arpeggios); voicings follow the
  nearest-inversion voice leading; comping rhythms are block, stabs, arpeggios or sustained;
- in ~55 % of tracks a lead/counter-melody instrument (flute with breath noise, brass/sax-like
  bright saw with a brightness envelope, synth lead) with delayed vibrato, playing phrases drawn
  by the same melody generator as the singer (melodic instruments are not voices);
- a bus with random EQ (tilt and shelves), optional convolution reverb, RMS compression and
  tanh soft clipping.

*Voice* (``vocals.wav``; silent in ``--instrumental-fraction`` of the tracks): a source-filter
voice rendered in the STFT domain. The source is a band-limited Rosenberg glottal-pulse
derivative (mip-mapped wavetable) with jitter, shimmer, drift and aspiration noise gated by the
open phase; the filter is a cascade of four formant resonators whose frequencies move between
phone targets (coarticulation), with per-singer formant scaling (male/female/child) and F1
tuned above F0 on high notes, plus a fixed brightness correction standing for the higher
formants (vowel spectra then match measured formant amplitudes within a few dB); fricatives,
bursts and breaths are shaped noise spectra. Two kinds:

- singing (70 %): a melody in the track's key (chord tones on strong beats, mostly stepwise,
  phrases with rests), one random syllable (onset consonant sung before the beat, vowel or
  diphthong, coda) per note, occasional melismas, portamento, scoops, vibrato 4.5-6.5 Hz with a
  delayed onset and random depth, breaths before phrases; sometimes a harmony a diatonic third
  above (20 %) or a double-tracked copy (15 %), quieter and panned off-centre;
- speech/rap (30 %): syllables at 3-7 per second with vowel/consonant alternation, breath
  groups with pauses, a declining pitch contour (80-300 Hz) with accents and final rises; in
  "rap" the syllables sit on the sixteenth-note grid.

The voice gets its own EQ, compression and (usually) reverb, a small Haas widening, and a random
level of -12...+6 dB (active-voice RMS against accompaniment RMS).

*Augmentation and mastering*: reverb = convolution with a synthetic stereo impulse response
(exponentially decaying noise, RT60 0.2-2.5 s with faster high-frequency decay, early
reflections, pre-delay 0-60 ms, random wet level), done in the same FFT pass as the EQ. Finally
the mixture is peak-normalised to -6...-0.5 dBFS, both stems scaled by the same factor, and
``mixture = vocals + accompaniment`` is computed in float32 (``--subtype PCM_16`` rounds each file
separately, so the sum then holds only within a couple of LSBs).

Backends. The defaults (``--accompaniment numpy --voice numpy``) need only numpy and scipy
(``tqdm`` is used for a progress bar when present). Optional, each needing its command line:

- ``--accompaniment fluidsynth --soundfont FILE.sf2``: the same arrangement written as a
  Standard MIDI File (General MIDI programs, drums on channel 10, CC7 volume, CC10 pan) and
  rendered by ``fluidsynth`` (its reverb/chorus off); the bus effects follow as above;
  ``--leads sampled`` then gives most tracks (and every instrumental one) a lead on one of the
  instruments that sound most like a voice, with the SoundFont's sampled timbres: harmonica,
  soprano/alto/tenor sax, trumpet, trombone, brass section, flute, violin, strings, piano,
  organ or overdriven lead guitar, playing the melody generator's lines in a singer's register
  with pitch-bend vibrato (delayed, 10-50 cents), scoops into phrases and legato phrases (a full
  General MIDI SoundFont such as Debian's ``fluid-soundfont-gm`` sounds far more real than the
  small ``timgm6mb-soundfont``); ``--horn-sections FRACTION`` has that fraction of the horn
  leads (saxes, trumpet, trombone, brass section) harmonised by 2-4 more horns a third to an
  octave below, slightly out of time with it, as a big band's sections play (drawn from a
  stream of its own: without the section the track is the same);
- ``--voice espeak``: spoken and rapped voices are ``espeak-ng`` speech of random English
  words in breath groups (SSML pauses), random voice variant, speed and pitch per singer kind,
  resampled to the output rate; singing stays the numpy singer;
- ``--voice festival``: the voices are Festival (``text2wave``) voices cut from real speakers,
  male and female, in their languages (Debian's ``festvox-*`` packages: English ``kal``/``ked``
  diphones and the ``slt`` HTS voice, Catalan ``ona`` HTS, Italian, Czech and Finnish diphones;
  whichever are installed). Spoken and rapped voices: random words of the voice's language in
  sentences, random speaking rate (diphone voices), a child as a female voice shifted up. Sung
  voices (lead, harmony, double): Festival's singing mode in a diphone voice, each phrase of
  the melody sung on syllables at its notes' pitches and lengths and placed at its onset (a
  phrase above 480 Hz an octave lower: the diphone resynthesis crashes above about 520 Hz).

Speed (numpy backends; the mean CPU time per track is printed at the end): on a 16-core Xeon,
0.27 s of CPU per 20 s track in one process and 0.38 s with ``--jobs 16`` (shared memory
bandwidth), i.e. 64 tracks in 1.8 s of wall time. The same ``--seed`` gives the same bytes for any
``--jobs`` on one machine; other numpy builds or CPUs may differ in the last bits.

Modules, bottom to top (each imports only those above it in this list): ``dsp`` (signal
helpers), ``arrangement`` (harmony, note sequences, the score), ``instruments`` (numpy note
renderers), ``drums``, ``voice`` (the numpy singer and speaker), ``effects`` (bus EQ, reverb,
compression), ``backends`` (FluidSynth and espeak-ng), ``mixing`` (one track), ``writer``
(files, worker pool, command line).
"""
