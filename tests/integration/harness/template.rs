//! The CloudFormation template's launch-template userdata (`cloud-init/cloudformation.yaml`),
//! read as CloudFormation reads it, and `Fn::Sub` as CloudFormation applies it, so the boot test
//! boots exactly what an operator's instances get.

use std::path::PathBuf;

pub fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cloud-init/cloudformation.yaml")
}

/// The text of the launch template's `UserData: Fn::Base64: !Sub |` block scalar (YAML's
/// literal style with clip chomping: the lines indented below it, dedented, one final newline).
pub fn userdata_source() -> String {
    let template = std::fs::read_to_string(template_path()).expect("reading cloud-init/cloudformation.yaml");
    let lines: Vec<&str> = template.lines().collect();
    let start = lines.iter().position(|l| l.trim_end().ends_with("Fn::Base64: !Sub |")).expect("a UserData !Sub block");
    let indent_of = |line: &str| line.len() - line.trim_start().len();
    let body = lines[start + 1..]
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(|l| indent_of(l))
        .expect("a non-empty UserData block");
    assert!(body > indent_of(lines[start]), "the UserData block is not indented below its key");
    let mut block: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent_of(l) >= body)
        .map(|l| if l.trim().is_empty() { "" } else { &l[body..] })
        .collect();
    while block.last() == Some(&"") {
        block.pop();
    }
    format!("{}\n", block.join("\n"))
}

/// `Fn::Sub` with `values` for its `${Name}` variables (`${!Literal}` is a literal `${Literal}`).
/// Panics on a variable without a value, as CloudFormation refuses the template.
pub fn substitute(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').unwrap_or_else(|| panic!("an unclosed ${{ in the userdata: {}", &rest[at..]));
        let name = &after[..end];
        match name.strip_prefix('!') {
            Some(literal) => out.push_str(&format!("${{{literal}}}")),
            None => {
                let value = values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
                out.push_str(value.unwrap_or_else(|| panic!("the userdata uses ${{{name}}}, which has no value")));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The variables the userdata uses, in order of first use.
pub fn variables(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for piece in text.split("${").skip(1) {
        let name = piece.split('}').next().unwrap_or_default().to_string();
        if !name.starts_with('!') && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}
