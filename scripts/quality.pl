#!/usr/bin/perl
# Helpers of scripts/quality.sh (perl: in every Debian, and its recursive patterns match C++'s
# nested brackets, which sed and awk cannot).
#
#   perl scripts/quality.pl normalise OUTDIR FILE...   writes OUTDIR/FILE for each FILE, prints the
#                                                      namespace names met (one a line)
#   perl scripts/quality.pl docs FILE...               one line per public declaration (see below)
#
# ---- normalise: C++20 that pmccabe 2.8 (a C-era parser) reads ----
# pmccabe skips or misreads, measured on this tree: any function declared `noexcept` (the whole
# enclosing class or namespace then ends in "too many }'s" and is lost), `namespace a::b {`
# (everything inside is skipped), requires-clauses (reported as a function named `requires`),
# concepts, digit separators (10'000 opens a character literal), and raw string literals
# (their quotes and braces). The rewrite keeps every line where it was, so file:line stays right:
#   1. comments become spaces, string and character literals become "" and 'x' (raw strings
#      included), numbers lose their digit separators;
#   2. `noexcept`, `noexcept(...)`, `[[attributes]]`, `alignas(...)`, `override` and `final` are
#      removed, and so are trailing return types (`) -> T {`) and ref-qualifiers (`) const& {`);
#   3. `inline namespace v` becomes `namespace v`, `namespace a::inline v {` becomes `namespace a::v {`,
#      `namespace a::b {` becomes `namespace a__b {`
#      and `struct a::b {` becomes `struct a__b {` (quality.sh turns `__` back into `::` in the
#      names pmccabe prints); a specialisation's `struct x<T*> {` becomes `struct x {`;
#   4. `concept c = ...;` becomes `bool c = true;`, requires-expressions become `true`, and
#      requires-clauses (after a template header or a declarator) are removed.
# Nothing that decides a function's complexity (if, for, while, case, &&, ||, ?) is touched
# outside of what 4 removes, which are compile-time constraints, not run-time paths. A lambda
# counts in the function that holds it (pmccabe's way, as a reader meets it), a local class's
# member function counts on its own as `function/class::member`.
use strict;
use warnings;

# Replaces a matched text by its newlines only (keeps the line numbers).
sub nl { my ($t) = @_; my $n = ($t =~ tr/\n//); return "\n" x $n; }

sub slurp {
  my ($f) = @_;
  open(my $in, '<', $f) or die "quality.pl: $f: $!\n";
  local $/;
  my $t = <$in>;
  return defined $t ? $t : '';
}

# Balanced (), <> and {} (recursive patterns).
my $par = qr/(?<par>\((?:[^()]++|(?&par))*\))/;
my $brc = qr/(?<brc>\{(?:[^{}]++|(?&brc))*\})/;
my $ang = qr/(?<ang><(?:[^<>(){};]++|(?&par2)|(?&ang))*>)(?(DEFINE)(?<par2>\((?:[^()]++|(?&par2))*\)))/;

# 1. comments, literals, numbers (line numbers kept)
sub strip_code {
  my ($src) = @_;
  my $out = '';
  pos($src) = 0;
  while (pos($src) < length $src) {
    if ($src =~ /\G(\/\/[^\n]*)/gc) {
      $out .= ' ';
    } elsif ($src =~ /\G(\/\*.*?\*\/)/gcs) {
      $out .= ' ' . nl($1);
    } elsif ($src =~ /\G((?:u8|u|U|L)?R"([^(\s]{0,16})\((.*?)\)\2")/gcs) {
      $out .= '""' . nl($1);
    } elsif ($src =~ /\G((?:u8|u|U|L)?"(?:\\.|[^"\\\n])*")/gc) {
      $out .= '""';
    } elsif ($src =~ /\G(\d(?:[\w.]|'(?=\w)|[eEpP][+-])*)/gc) {
      (my $n = $1) =~ s/'//g;
      $out .= $n;
    } elsif ($src =~ /\G([A-Za-z_]\w*)/gc) {
      $out .= $1;  # an identifier: keeps u8"..." apart from a name ending in u8
    } elsif ($src =~ /\G((?:u8|u|U|L)?'(?:\\.|[^'\\\n])+')/gc) {
      $out .= "'x'";
    } elsif ($src =~ /\G(.)/gcs) {
      $out .= $1;
    }
  }
  return $out;
}

sub normalise {
  my ($src) = @_;
  $src = strip_code($src);

  # 2. noexcept, attributes, ...
  $src =~ s/\bnoexcept\b(\s*$par)?/nl($&)/ge;
  $src =~ s/\[\[.*?\]\]/nl($&)/gse;
  $src =~ s/\balignas\s*$par/nl($&)/ge;
  $src =~ s/\b(?:override|final)\b//g;
  # trailing return types (`) -> T {`, spaced, so no member access) and ref-qualifiers (`) const& {`)
  $src =~ s{\)(\s*(?:const\s*)?)\s->\s([\w:<>,.\s*&]+?)(\s*\{)}{')' . $1 . nl($2) . $3}ge;
  $src =~ s{\)(\s*(?:const\s*)?)(?:&&|&)(\s*\{)}{)$1$2}g;

  # 3. namespaces
  $src =~ s/\binline(\s+namespace\b)/$1/g;
  $src =~ s/\bnamespace(\s+[\w:]*?)::\s*inline\s+(?=\w)/namespace$1::/g;  # xsn::inline v0
  $src =~ s{\bnamespace(\s+)(\w+(?:\s*::\s*\w+)+)(\s*\{)}{
    my ($a, $n, $b) = ($1, $2, $3); (my $m = $n) =~ s/\s*::\s*/__/g; "namespace$a$m" . nl($n) . $b
  }ge;

  # class heads: `struct a::b {` becomes `struct a__b {`, a partial or explicit specialisation
  # `struct x<void(E)> {` becomes `struct x {` (pmccabe drops both classes whole)
  $src =~ s{\b(class|struct|union)(\s+)((?:\w+\s*(?:$ang)?\s*::\s*)*\w+)(\s*$ang)?(?=\s*(?::(?!:)|\{))}{
    my ($k, $sp, $name, $args) = ($1, $2, $3, $4 // '');
    (my $m = $name) =~ s/\s*(?:$ang)?\s*::\s*/__/g;
    "$k$sp$m" . nl($name . $args)
  }ge;

  # 4. concepts and constraints
  # concept c = <anything up to the ';' outside braces and parentheses>;
  $src =~ s{\bconcept(\s+)(\w+)(\s*=)((?:[^;{}()]++|$brc|$par)*);}{"bool$1$2$3 true" . nl($4) . ';'}ge;
  # requires-expressions: `requires (params) { ... }` or `requires { ... }` where an expression goes
  $src =~ s{((?:[=(!,]|&&|\|\||\breturn|\brequires)\s*)requires(\s*$par)?\s*$brc}{$1 . 'true' . nl($&)}ge;
  # requires-clauses: `requires` then a primary (parenthesised, or a name with template arguments,
  # or `true`), joined by && and ||
  my $primary = qr/(?:!\s*)?(?:$par|(?:::)?\w+(?:\s*::\s*\w+)*(?:\s*$ang)?)/;
  $src =~ s{\brequires\s+(?=[\w(!:])$primary(?:\s*(?:&&|\|\|)\s*$primary)*|\brequires\s*$par}{nl($&)}ge;

  return $src;
}

# ---- docs: public declarations of a header and whether a `///` comment documents them ----
# A declaration counts when it is at the scope of namespace xsn or a namespace in it (not `detail`,
# not unnamed), or a public member of a class there (a struct's members until `private:`):
# classes, structs, unions, enums (one each, not their enumerators), functions (members or free,
# constructors, destructors and operators included), aliases (`using x =`, typedef), concepts,
# variables and data members. Not counted: `detail` and unnamed namespaces, private and protected
# sections, forward declarations, `= default` and `= delete` members, overrides (the virtual
# function they override carries the contract), friends, using-declarations, static_asserts,
# out-of-line definitions (`x::f(...) {`: a second sight of a declaration) and specialisations of
# std or Boost templates. Documented: the line right before the declaration (before its
# `template <...>` line, if any) is a `///` or `/** */` comment line, or the declaration carries a
# trailing `///<`. Output: documented (0/1) TAB kind TAB file:line TAB the declaration's text.
sub docs {
  my ($file) = @_;
  my $orig = slurp($file);
  my @lines = split /\n/, $orig, -1;
  my (@doc, @trail);
  my $in_block = 0;
  for my $i (0 .. $#lines) {
    my $l = $lines[$i];
    my $is = 0;
    if ($in_block) { $is = 1; $in_block = 0 if $l =~ /\*\//; }
    elsif ($l =~ /^\s*\/\/\/(?!<)/) { $is = 1; }
    elsif ($l =~ /^\s*\/\*\*/) { $is = 1; $in_block = 1 unless $l =~ /\*\//; }
    $doc[$i + 1] = $is;
    $trail[$i + 1] = ($l =~ /\/\/\/</) ? 1 : 0;
  }
  my $code = strip_code($orig);
  $code =~ s/^[ \t]*#(?:[^\n]*\\\n)*[^\n]*//mg;    # preprocessor lines (keeps the newlines)
  $code =~ s/\[\[.*?\]\]/nl($&)/gse;                 # attributes
  # kind ns|class; public: what is declared inside counts (only namespace xsn and those in it)
  my @scope = ({ kind => 'ns', public => 0, top => 1 });
  my ($decl, $decl_line, $line, $parens) = ('', 1, 1, 0);
  my $n = length $code;
  my $i = 0;
  my $skip_block = sub {    # from a '{' at $i to after its '}'
    my $depth = 0;
    while ($i < $n) {
      my $c = substr($code, $i++, 1);
      $line++ if $c eq "\n";
      if ($c eq '{') { $depth++; }
      elsif ($c eq '}') { last if --$depth == 0; }
    }
  };
  my $emit = sub {
    my ($kind, $text, $start, $end) = @_;
    return unless $scope[-1]{public};
    my $documented = ($start > 1 && $doc[$start - 1]) ? 1 : 0;
    for my $l ($start .. $end) { $documented = 1 if $trail[$l]; }
    $text =~ s/\s+/ /g;
    $text = substr($text, 0, 80);
    print "$documented\t$kind\t$file:$start\t$text\n";
  };
  # Strips access labels and template headers off the front, updating the scope; returns the
  # declaration's text and first line.
  my $front = sub {
    my ($text, $start) = @_;
    while (1) {
      if ($text =~ s/^(\s*)//) { $start += ($1 =~ tr/\n//); }
      if ($text =~ s/^(public|private|protected)(\s*):(?!:)//) {
        $start += ($2 =~ tr/\n//);
        my $s = $scope[-1];
        $s->{public} = ($1 eq 'public' && $s->{parent_public}) ? 1 : 0 if $s->{kind} eq 'class';
        next;
      }
      last;
    }
    return ($text, $start);
  };
  my $classify = sub {    # the kind of a declaration ended by ';' (or a function body's '{')
    my ($t) = @_;
    my $u = $t;
    $u =~ s/^template\s*$ang\s*//g while $u =~ /^template\s*</;
    $u =~ s/^requires\b[^;{]*?(?=\b(?:class|struct|union|enum|[\w:<>,\s*&]+\())//;
    return '' if $u =~ /^\s*$/;
    return '' if $u =~ /^(friend|static_assert|using\s+namespace)\b/;
    return '' if $u =~ /=\s*(default|delete)\s*$/;
    return 'alias' if $u =~ /^(typedef\b|using\s+\w+\s*=)/;
    return '' if $u =~ /^using\b/;                            # using-declaration
    return 'concept' if $u =~ /^concept\b/;
    return '' if $u =~ /^(class|struct|union|enum)\b[^={(]*$/;   # forward declaration
    my $p = index($u, '(');
    if ($p >= 0) {
      my $before = substr($u, 0, $p);
      my $opens = () = $before =~ /</g;
      my $closes = () = $before =~ />/g;
      if ($before !~ /(?<![=!<>])=(?!=)/ || $before =~ /\boperator\s*\S*=\s*$/) {
        return '' if $before =~ /::\s*~?\s*\w+\s*$/ && $before !~ /\boperator\b/;   # x::f(...) defined out of line
        return '' if $before =~ /::\s*operator\b/;
        return '' if $u =~ /\)[^()]*\boverride\b/;    # documented where it is declared virtual
        return 'function' if $opens <= $closes || $before =~ /\boperator\b/;
      }
    }
    return 'variable';
  };
  while ($i < $n) {
    my $c = substr($code, $i, 1);
    if ($c eq "\n") { $line++; }
    if ($c eq '(') { $parens++; }
    elsif ($c eq ')') { $parens-- if $parens > 0; }
    elsif ($c eq '{' && $parens > 0) {    # a braced default argument or requires-expression
      my $from = $i; my $l0 = $line; $skip_block->();
      $decl .= substr($code, $from, $i - $from); next;
    }
    elsif ($c eq '{') {
      my ($t, $start) = $front->($decl, $decl_line);
      my $u = $t;
      $u =~ s/^template\s*$ang\s*//g while $u =~ /^template\s*</;
      $u =~ s/^requires\b[^{]*?(?=\b(?:class|struct|union|enum)\b)//;
      if ($u =~ /^(?:inline\s+)?namespace\b\s*((?:::\s*inline\s+|[\w:])*)/) {
        (my $name = $1) =~ s/::\s*inline\s+/::/g;  # `xsn::inline v0::detail` is xsn::v0::detail
        my $hidden = ($name eq '' || $name =~ /(^|::)detail(::|$)/) ? 1 : 0;
        my $open = $scope[-1]{top} ? ($name =~ /^xsn(::|$)/ ? 1 : 0) : $scope[-1]{public};
        push @scope, { kind => 'ns', public => ($open && !$hidden) ? 1 : 0 };
        $i++; ($decl, $decl_line) = ('', $line); next;
      }
      if ($u =~ /^extern\s*""\s*$/) {
        push @scope, { kind => 'ns', public => $scope[-1]{public} };
        $i++; ($decl, $decl_line) = ('', $line); next;
      }
      if ($u =~ /^enum\b/) {
        my $l0 = $line; $skip_block->();
        $emit->('enum', $t, $start, $line);
        ($decl, $decl_line) = ('', $line); next;
      }
      if ($u =~ /^(class|struct|union)\b[^=(]*$/ || $u =~ /^(class|struct|union)\b[^=]*$ang[^=(]*$/) {
        my $kw = $1;
        $emit->('type', $t, $start, $line);
        my $pub = $scope[-1]{public};
        push @scope, { kind => 'class', parent_public => $pub, public => ($kw eq 'class' ? 0 : $pub) };
        $i++; ($decl, $decl_line) = ('', $line); next;
      }
      my $kind = $classify->($t);
      if ($kind eq 'function' || $t =~ /^\s*$/) {    # a function body (or a bare block)
        my $l0 = $line; $skip_block->();
        $emit->('function', $t, $start, $l0) if $kind eq 'function';
        ($decl, $decl_line) = ('', $line); next;
      }
      # a braced initialiser (or a lambda in one): part of the declaration, which ends at ';'
      my $from = $i; $skip_block->();
      $decl .= substr($code, $from, $i - $from); next;
    }
    elsif ($c eq '}') {
      pop @scope if @scope > 1;
      $i++; ($decl, $decl_line) = ('', $line); next;
    }
    elsif ($c eq ';' && $parens == 0) {
      my ($t, $start) = $front->($decl, $decl_line);
      my $kind = $classify->($t);
      $emit->($kind, $t, $start, $line) if $kind ne '';
      $i++; ($decl, $decl_line) = ('', $line); next;
    }
    if ($decl eq '' && $c =~ /\s/) { $i++; $decl_line = $line; next; }
    $decl .= $c;
    $i++;
  }
  # A label right before the class's '}' ends nothing: ignore what is left.
}

my $mode = shift @ARGV // '';
if ($mode eq 'normalise') {
  my $outdir = shift @ARGV or die "usage: quality.pl normalise OUTDIR FILE...\n";
  my %ns;
  for my $f (@ARGV) {
    my $t = normalise(slurp($f));
    $ns{$_} = 1 for map { split /__/ } ($t =~ /\bnamespace\s+(\w+)\s*\{/g);
    (my $dir = "$outdir/$f") =~ s{/[^/]*$}{};
    system('mkdir', '-p', $dir) == 0 or die "quality.pl: mkdir $dir failed\n";
    open(my $out, '>', "$outdir/$f") or die "quality.pl: $outdir/$f: $!\n";
    print $out $t;
    close $out;
  }
  print "$_\n" for sort keys %ns;
} elsif ($mode eq 'docs') {
  docs($_) for @ARGV;
} else {
  die "usage: quality.pl normalise OUTDIR FILE... | quality.pl docs FILE...\n";
}
