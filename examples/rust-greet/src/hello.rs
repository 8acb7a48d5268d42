/// Greets `name`.
pub fn hello(name: &str) -> String {
    format!("Hello, {name}!")
}

#[cfg(test)]
mod tests {
    #[test]
    fn hello() {
        assert_eq!(super::hello("Ada"), "Hello, Ada!");
    }
}
